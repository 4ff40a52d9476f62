/*
 * roomd.h: every struct and prototype of the daemon, grouped by the file
 * that owns them.  Read this first: it is the map of the program.
 *
 *   roomd.c           master: options, sockets, arena, fork, supervision
 *   control.c         the master's admin socket (roomctl) and /metrics
 *   health.c          liveness and readiness: worker heartbeats, the
 *                     arena walk, the cluster link (/healthz, /readyz)
 *   api.c             the server API: HTTP and JSON for the application
 *   config.c          the configuration file and its defaults
 *   log.c             logging to stderr or syslog
 *   proc.c            the doorbell mesh between workers
 *   server.c          a worker: its event loop, accept, connection life
 *   server_io.c       a connection's transport: events, buffers, writev
 *   server_http.c     HTTP/1.1 requests and responses
 *   server_ws.c       WebSocket upgrade and RFC 6455 framing (wslay)
 *   server_deflate.c  permessage-deflate: negotiation and the codec
 *   server_file.c     static files from the document root
 *   room.c            the room engine: rooms, members and their presence,
 *                     op logs; the only code above shm/ that touches them
 *   fanout.c          a worker's side of rooms: its view of the rooms its
 *                     connections joined, doorbells, delivery of records
 *   stats.c           the daemon's counters (in the arena, for /metrics)
 *   dialect.c         the table of dialects and their mounts
 *   dialect_*.c       one protocol each, on top of the room engine
 *   jwt.c             JSON Web Tokens (HMAC, RSA, ECDSA)
 *   oauth.c           chat sign-in through OAuth 2.0 / OpenID providers
 *   fetch.c           HTTPS requests roomd makes to those providers
 *   util.c            JSON, tokens, digests, query strings
 *
 * The layers: the wire (server*.c) and the dialects reach rooms only
 * through the engine (room.c) and the fan-out (fanout.c); shm.h, the
 * arena's layout, is included by room.c, stats.c and roomd.c (the
 * master) alone, so nothing above the engine can tell where a room is
 * kept (tests/integration/test_layers.py checks it).  roomctl.c is a separate program that speaks to
 * control.c over the admin socket.
 */
#ifndef ROOMD_H
#define ROOMD_H

#include <sys/queue.h>
#include <sys/socket.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define ROOMD_MAX_WORKERS	64	/* worker slots (the arena tracks 64) */
#define CLUSTER_SHARDS_MAX	8	/* the cluster line and 7 cluster_shard */
#define ROOMD_MAX_LISTEN	16
/* Rooms and members (room.c) */
#define ROOM_ID_MAX		64	/* bytes of a room id */
#define MEMBER_NAME_MAX		127	/* bytes; dialects set their own limits */
#define MEMBER_TOKEN_LEN	32	/* hex characters */
#define MEMBER_UID_LEN		36	/* a UUID string */
#define MEMBER_ROLE_HOST	0x1	/* the role bit most dialects share */
#define ROOMD_MAX_MOUNTS	16
#define ROOMD_DEFAULT_LISTEN	"127.0.0.1:8080"
#define ROOMD_CONF		ROOMD_SYSCONFDIR "/roomd.conf"
#define ROOMD_PIDFILE		"/var/run/roomd.pid"
#define ROOMD_CONTROL		"/var/run/roomd.sock"
#define ROOMD_STOP_TIMEOUT	5	/* seconds a worker drains on stop */
#define ROOMD_LISTEN_BACKLOG	4096	/* capped by the kernel (somaxconn) */
#define ROOMD_ARENA_MIN		(4UL << 20)	/* smallest arena_size */

struct arena;
struct bufferevent;
struct evbuffer;
struct event;
struct event_base;
struct json_object;
struct conn;
struct dialect;
struct doorbell;
struct http_req;
struct lroom;
struct ssl_ctx_st;

/* config.c */
struct listen_addr {
	char			 text[128];
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	int			 tls;		/* listen ... tls */
	int			 line;		/* of the file, for errors */
	char			 cert[1024];	/* PEM: certificate (chain) */
	char			 key[1024];	/* PEM: its private key */
};

struct mount {
	char			 path[256];
	const struct dialect	*dialect;
	int			 is_default;	/* -M may take its path */
};

/* A sign-in provider of the chat: chat_provider NAME FIELD VALUE. */
#define ROOMD_MAX_PROVIDERS	8
#define ROOMD_MAX_ADMINS	16
#define ROOMD_MAX_API_KEYS	16
#define API_KEY_MIN		16	/* bytes of an api_key */
#define API_KEY_MAX		256
/* Webhooks and join checks (webhook.c, authhook.c). */
#define ROOMD_MAX_WEBHOOKS	4
#define ROOMD_MAX_DIALECTS	8	/* dialect ids are below this */
#define ROOMD_URL_MAX		512
struct chat_provider {
	char			 name[32];
	char			 issuer[256];
	char			 client_id[256];
	char			 client_secret[256];
	char			 authorize[512];
	char			 token[512];
	char			 jwks[512];
	char			 userinfo[512];
	char			 scope[256];
	char			 redirect[512];
	int			 line;		/* where it was first named */
};

struct roomd_config {
	char			 file[1024];
	struct listen_addr	 listens[ROOMD_MAX_LISTEN];
	int			 nlistens;
	struct mount		 mounts[ROOMD_MAX_MOUNTS];
	int			 nmounts;
	int			 workers;
	uint64_t		 arena_size;
	char			 arena_path[256];
	char			 pidfile[1024];
	uint64_t		 max_header_bytes;
	uint64_t		 max_body_bytes;
	uint64_t		 max_message_bytes;
	uint64_t		 output_buffer_bytes;
	int			 idle_timeout;
	int			 ping_interval;
	int			 room_ttl;
	uint64_t		 room_max_members;
	uint64_t		 room_log_max_bytes;
	char			 classroom_jwt_secret[256];
	char			 classroom_jwt_subject[256];
	int			 classroom_open_rooms;	/* -1: unset */
	int			 lobby_ping_interval;
	int			 lobby_grace;
	int			 lobby_retention;
	int			 lobby_migration;
	uint64_t		 lobby_snapshot_max_bytes;
	int			 lobby_replies;	/* LOBBY_REPLIES_* */
	int			 chat_anonymous;
	int			 chat_history;
	struct chat_provider	 providers[ROOMD_MAX_PROVIDERS];
	int			 nproviders;
	char			 chat_admins[ROOMD_MAX_ADMINS][40];
	int			 nadmins;
	char			 chat_ca_file[1024];
	char			 chat_session_secret[256];
	int			 chat_session_ttl;
	int			 drain_timeout;
	int			 max_connections_per_ip;	/* 0: none */
	int			 max_rooms_per_ip;
	int			 message_rate;		/* per second */
	int			 message_burst;
	int			 join_failures_per_minute;
	int			 limits_on_loopback;	/* else exempt */
	int			 websocket_compression;	/* permessage-deflate */
	char			 allowed_origins[2048];	/* "" : any */
	char			 htdocs[1024];
	char			 control_socket[108];
	char			 metrics_listen[128];
	char			 user[64];
	/* The server API (api.c) and readiness (health.c). */
	char			 api_listen[128];
	char			 api_keys[ROOMD_MAX_API_KEYS][API_KEY_MAX + 1];
	int			 napi_keys;
	char			 api_sender[ROOM_ID_MAX + 1];
	int			 arena_walk_interval;	/* seconds; 0: never */
	/* Webhooks and join checks (webhook.c, authhook.c) */
	char			 webhooks[ROOMD_MAX_WEBHOOKS][ROOMD_URL_MAX];
	int			 nwebhooks;
	char			 webhook_secret[256];
	int			 webhook_queue;		/* events per process */
	int			 webhook_retries;
	int			 webhook_timeout;	/* seconds */
	char			 auth_hooks[ROOMD_MAX_DIALECTS][ROOMD_URL_MAX];
	int			 auth_hook_timeout;	/* seconds */
	int			 auth_hook_allow_on_failure;
	char			 cluster[512];	/* "" : one host, no Redis */
	char			 cluster_shard[CLUSTER_SHARDS_MAX - 1][512];
	int			 ncluster_shards;
	char			 cluster_host[65];
	char			 cluster_prefix[65];
	int			 cluster_lease;	/* seconds */
	int			 cluster_wait;	/* replicas */
};

/* lobby_replies: the names of the answers to createRoom and joinRoom. */
#define LOBBY_REPLIES_DOCUMENT	0x1	/* roomCreated, roomJoined */
#define LOBBY_REPLIES_GROOVEJET	0x2	/* createdRoom, joinedRoom */

void	 config_defaults(struct roomd_config *);
int	 config_load(struct roomd_config *, const char *file, char *err,
	    size_t errlen);
int	 config_listen(struct roomd_config *, const char *, char *, size_t);
int	 config_mount(struct roomd_config *, const char *dialect,
	    const char *path, char *, size_t);
int	 config_finish(struct roomd_config *, char *, size_t);
int	 config_reread(struct roomd_config *, const char *file);
int	 config_apply_live(struct roomd_config *, const struct roomd_config *);
int	 config_generation_differs(const struct roomd_config *,
	    const struct roomd_config *);
const char *config_keyword(size_t);
/* The server API's settings against the whole configuration (the command
 * line's listen addresses included): 0, or -1 with the reason in err. */
int	 config_check_api(const struct roomd_config *, char *, size_t);

/* roomd.c: the process-wide environment, the same in master and workers */
struct roomd {
	struct roomd_config	 conf;
	struct arena		*arena;		/* for room.c, fanout.c, stats.c */
	int			 nworkers;
	int			 slot;		/* -1 in the master */
	int			 listen_fd[ROOMD_MAX_WORKERS][ROOMD_MAX_LISTEN];
	int			 inbox[ROOMD_MAX_WORKERS][2];
	int			 api_fd;	/* api_listen's socket, or -1 */
	int			 foreground;
	int			 verbose;
	char			 chat_secret[MEMBER_TOKEN_LEN + 1];
};
extern struct roomd	*env;

/* log.c */
void	 log_init(int foreground, int verbose);
void	 log_setproc(const char *);
void	 log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 fatal(const char *, ...) __attribute__((format(printf, 1, 2),
	    noreturn));
void	 fatalx(const char *, ...) __attribute__((format(printf, 1, 2),
	    noreturn));
/*
 * A warning that may repeat often (a backend down): logged at most once
 * every LOG_LIMIT_INTERVAL seconds per limiter, with how many were
 * left out since the last.
 */
#define LOG_LIMIT_INTERVAL	10
struct log_limit {
	const char	*prefix;
	time_t		 last;
	unsigned	 skipped;
};
void	 log_limited(struct log_limit *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));

/* control.c: the admin socket and the metrics endpoint, in the master */
/* A worker slot: free, serving, or draining after a reload started a
 * new generation of workers in other slots. */
enum worker_state { WORKER_FREE, WORKER_ACTIVE, WORKER_DRAINING };
struct worker_info {
	int		 pid;
	unsigned	 restarts;
	int		 state;
};
int	 control_open(void);
void	 control_fds(int *, int *);
void	 control_accept(int fd, const struct worker_info *, time_t started,
	    int *stop, int *reload);
void	 metrics_accept(int fd, const struct worker_info *);
void	 control_close(void);

/* proc.c: the doorbell mesh (struct doorbell: fanout.c) */
int	 proc_mesh_open(void);
void	 proc_mesh_worker(struct event_base *);
int	 proc_ring(int slot, const struct doorbell *);
/*
 * A message from the master to whichever worker is alive: a doorbell
 * header of this type, then len bytes of data (at most PROC_MSG_MAX).
 * proc_live_slot (set by roomd.c) names the worker.  0, or -1 if no
 * inbox could take it now.
 */
#define PROC_WEBHOOK		0x100	/* webhook.c: an event to send */
#define PROC_MSG_MAX		8192
extern int	(*proc_live_slot)(void);
int	 proc_forward(uint32_t type, const void *data, size_t len);

/* server.c: a worker */
enum conn_state { CONN_HTTP, CONN_WS, CONN_CLOSING };

struct conn {
	TAILQ_ENTRY(conn)	 entry;
	LIST_ENTRY(conn)	 room_entry;
	TAILQ_ENTRY(conn)	 out_entry;	/* output to write at flush */
	uint64_t		 id;
	/* The transport (server_io.c): a bufferevent for TLS; for a plain
	 * socket a read event, a write event while output is refused, and
	 * buffers while something waits in them. */
	struct bufferevent	*bev;
	struct event		*rev, *wev;
	struct evbuffer		*in, *out;
	int			 idle, stall;	/* timeouts, seconds */
	int			 parting;	/* see server_parting */
	enum conn_state		 state;
	struct http_req		*req;		/* while speaking HTTP */
	void			*ws;		/* server_ws.c's state once upgraded */
	const struct mount	*mount;
	struct lroom		*room;		/* the room it has joined */
	uint64_t		 mid;		/* its member id there */
	uint64_t		 cursor;	/* last op log seq sent */
	void			*data;		/* the dialect's own */
	unsigned		 pinged:1;
	unsigned		 peer_closed:1;
	unsigned		 behind:1;	/* output full: catch up later */
	unsigned		 in_recv:1;	/* inside wslay_event_recv */
	unsigned		 raw_closed:1;	/* roomd wrote the close itself */
	unsigned		 held:1;	/* its answer comes later */
	unsigned		 tls:1;
	unsigned		 closed:1;	/* server_close() was called */
	unsigned		 no_read:1;	/* conn_reading(conn, 0) */
	unsigned		 out_queued:1;	/* on the flush's output list */
	unsigned		 io_failed:1;	/* no buffer: the flush closes */
	unsigned		 addr_counted:1; /* in the address table */
	unsigned		 api:1;		/* came on api_listen */
	void			(*hold_cancel)(void *);
	void			*hold_arg;
	uint64_t		 addr[2];	/* client address key */
	uint64_t		 tokens;	/* message_rate bucket, 1/1000 */
	uint64_t		 refilled;	/* when, in milliseconds */
};
TAILQ_HEAD(connlist, conn);

void	 server_main(int slot) __attribute__((noreturn));
/* A worker without server_main's listeners, signals and mesh, for the
 * fuzz harnesses: its loop, a socket taken as if listener l accepted it,
 * and its open connections in turn (NULL: the first). */
void	 server_init(void);
void	 server_accept_fd(int fd, struct sockaddr *, int salen, int l);
#define SERVER_LISTENER_API	(-1)	/* l of api_listen's connections */
struct conn *server_conn_next(struct conn *);
/* What the transport tells server.c, besides input and a drained output. */
enum conn_io_event { CONN_IO_IDLE, CONN_IO_STALLED, CONN_IO_EOF, CONN_IO_ERROR };
void	 server_read(struct conn *);
void	 server_write(struct conn *);
void	 server_event(struct conn *, enum conn_io_event);
/* The worker is stopping, or closes conn of its own accord (marked by
 * server_parting: cluster mode, 1012): its client comes back, so rooms
 * are kept and nobody is announced as leaving. */
int	 server_stopping(const struct conn *);
void	 server_parting(struct conn *);
struct event_base *server_base(void);
void	 server_close(struct conn *, const char *reason);
void	 server_flush_later(void);
int	 server_output_full(struct conn *);
/* TLS contexts of the listeners: loaded by the master before it drops
 * privileges (workers inherit them), and again on SIGHUP. */
int	 server_tls_load(const struct roomd_config *, char *, size_t);
void	 server_tls_reload(const struct roomd_config *);
void	 server_tls_free(void);
/* The limits on one client address (room_addr_*), and on a connection.
 * server_limit_addr is conn's address when the per-address limits apply
 * to it (limits_on_loopback), else NULL. */
void	 server_addr_key(const struct sockaddr *, uint64_t key[2]);
const uint64_t *server_limit_addr(struct conn *);
int	 server_message_allowed(struct conn *);

/* server_io.c: a connection's transport */
int	 conn_io_open(struct conn *, int fd, struct ssl_ctx_st *);
void	 conn_io_close(struct conn *);
void	 conn_io_free(struct conn *);
void	 conn_io_flush(void);
void	 conn_io_flush_later(struct conn *);
int	 conn_fd(struct conn *);
struct evbuffer *conn_in(struct conn *);
void	 conn_in_trim(struct conn *);
struct evbuffer *conn_out(struct conn *);
size_t	 conn_out_len(struct conn *);
void	 conn_reading(struct conn *, int);
void	 conn_timeouts(struct conn *, int idle, int stall);

/* server_http.c */
#define HTTP_MAX_QUERY	16
struct http_req {
	void		*parser;	/* http_parser */
	int		 method;	/* enum http_method */
	char		*url;
	size_t		 url_len;
	char		*path;		/* decoded path, no query */
	char		*query;		/* raw query string or NULL */
	char		*hfield;	/* header being read */
	char		*hvalue;
	int		 hstate;
	size_t		 header_bytes;
	int		 nheaders;
	char		*upgrade;
	char		*connection;
	char		*ws_key;
	char		*ws_version;
	char		*ws_extensions;	/* every such line, joined */
	char		*authorization;
	char		*cookie;
	char		*host;
	char		*origin;
	char		*if_none_match;
	char		*body;
	size_t		 body_len;
	int		 complete;
	int		 error;		/* an HTTP status to answer with */
	time_t		 started;	/* first byte of this request */
};

void	 server_http_start(struct conn *);
void	 server_http_read(struct conn *);
void	 server_http_free(struct http_req *);
void	 server_http_respond(struct conn *, int status, const char *type,
	    const char *body, size_t len, const char *extra_headers);
void	 server_http_json(struct conn *, int status, struct json_object *);
void	 server_http_upgrade_required(struct conn *);
void	 server_http_error(struct conn *, int status, const char *code,
	    const char *message);
const char *server_http_method(struct http_req *);
void	 server_http_hold(struct conn *, void (*cancel)(void *), void *);
void	 server_http_resume(struct conn *);
/* A dialect's ws_accept that held the handshake returns HTTP_HELD; it
 * later answers it (server_http_error, then server_http_resume) or lets
 * the upgrade go ahead with server_http_upgrade, which opens the
 * WebSocket (ws_open) and leaves conn held until resumed. */
#define HTTP_HELD	(-1)
void	 server_http_upgrade(struct conn *);

/* server_file.c */
void	 server_file_serve(struct conn *, struct http_req *);

/* server_ws.c */
int	 server_ws_upgrade(struct conn *, struct http_req *);
void	 server_ws_read(struct conn *);
void	 server_ws_free(struct conn *);
void	 server_ws_send(struct conn *, int binary, const char *, size_t);
void	 server_ws_send_text(struct conn *, const char *, size_t);
void	 server_ws_send_json(struct conn *, struct json_object *);
void	 server_ws_close(struct conn *, int code, const char *reason);
void	 server_ws_ping(struct conn *);
void	 server_ws_set_ping(struct conn *, int seconds);
/*
 * Hold a WebSocket while its dialect waits for another server: nothing
 * more is read, messages already read wait (up to max_message_bytes of
 * them; past that the connection closes 1008) and are passed on in order
 * by server_ws_resume.  cancel(arg) runs if the connection closes first.
 */
void	 server_ws_hold(struct conn *, void (*cancel)(void *), void *);
void	 server_ws_resume(struct conn *);
/*
 * A frame built once and shared, without copying, by every connection it
 * goes to: fill an evbuffer with the payload, seal it (which takes the
 * buffer and puts the frame header in front; NULL without memory), send
 * it to each, then free it.  Connections that negotiated compression get
 * a compressed variant, made the first time one of them needs it.
 */
struct ws_frame;
struct ws_frame *server_ws_frame_seal(struct evbuffer *, int binary);
void	 server_ws_frame_send(struct conn *, struct ws_frame *);
void	 server_ws_frame_free(struct ws_frame *);

/* server_deflate.c: permessage-deflate (RFC 7692) */
enum deflate_error {
	DEFLATE_ETOOBIG = -1,	/* inflates past the limit given */
	DEFLATE_EDATA = -2,	/* not valid DEFLATE data */
	DEFLATE_ENOMEM = -3
};
struct server_deflate_in;
/*
 * Choose among the offers of a Sec-WebSocket-Extensions value (NULL: none)
 * the first valid permessage-deflate: 1, with the window bits roomd may
 * use to compress in *server_bits and the response's header line (CRLF
 * ended) in resp; 0 if none is acceptable.
 */
int	 server_deflate_negotiate(const char *offers, int *server_bits,
	    char *resp, size_t len);
/* Compress the octets of in after the first skip as one message, with
 * no context taken over and a window of 2^bits, appending the payload of
 * its frame to out.  0, or -1 without memory. */
int	 server_deflate_message(int bits, struct evbuffer *in, size_t skip,
	    struct evbuffer *out);
/* Inflate one message: start, feed its payloads as they come with the
 * largest output allowed, finish (which gives the message, valid until
 * the free).  Feed and finish return 0 or a DEFLATE_E* error. */
struct server_deflate_in *server_deflate_in_new(void);
int	 server_deflate_in_feed(struct server_deflate_in *, const uint8_t *,
	    size_t, size_t max);
int	 server_deflate_in_finish(struct server_deflate_in *, size_t max,
	    const uint8_t **msg, size_t *len);
void	 server_deflate_in_free(struct server_deflate_in *);
const char *server_deflate_strerror(int);

/* room.c: the room engine */

/* Errors of the engine: 0 is success, these are negative. */
enum room_error {
	ROOM_OK = 0,
	ROOM_ENOSPC = -1,	/* no memory left for rooms */
	ROOM_EEXIST = -2,	/* a room or member of that name exists */
	ROOM_ENOENT = -3,	/* no such room or member */
	ROOM_ELIMIT = -4,	/* a configured limit was reached */
	ROOM_EINVAL = -5,	/* bad argument */
	ROOM_ESTATE = -6,	/* the room's state could not be repaired */
	ROOM_EUNAVAIL = -7	/* cluster mode: Redis cannot be reached, the
				 * host's lease ran out or the room is busy;
				 * nothing was written */
};

struct room;			/* a room held locked */
/* A room found earlier: lock it with room_lock, which fails once the room
 * is deleted, even if another room took its place. */
struct room_ref {
	uint64_t	 off;
	uint64_t	 rid;		/* unique per room, never reused */
};
/* A record of a room's op log, as read. */
struct room_rec {
	uint64_t	 seq;		/* 1, 2, 3... per room */
	uint64_t	 target;	/* the audience's argument */
	const void	*data;
	size_t		 len;
	int		 type;		/* enum room_audience, or the dialect's */
};
/* A record to append. */
struct room_rec_in {
	const void	*data;
	uint32_t	 len;
	uint16_t	 type;
	uint64_t	 target;
};
typedef int (*room_read_fn)(const struct room_rec *, void *);

/* A copy of a member, taken under the room lock. */
struct room_member {
	uint64_t	 mid;		/* 1.., unique within the room */
	uint64_t	 role;		/* the dialect's bits */
	uint64_t	 authorities;	/* the dialect's bits */
	uint64_t	 joined;	/* unix time */
	int		 connected;	/* has a connection on some worker */
	char		 name[MEMBER_NAME_MAX + 1];
	char		 token[MEMBER_TOKEN_LEN + 1];
	char		 uid[MEMBER_UID_LEN + 1];
};

/*
 * Who gets a message published in a relay room.  It is a log record
 * (type = audience, target = member id); each worker delivers it to its
 * own connections in log order.
 */
enum room_audience {
	AUD_ALL = 1,		/* every member */
	AUD_ALL_BUT,		/* every member but target */
	AUD_MEMBER,		/* member target only */
	AUD_CLOSE_MEMBER,	/* send (if any), then close member target */
	AUD_CLOSE_ALL_BUT,	/* send (if any), then close all but target */
	AUD_TAG,		/* members the dialect's relay_match picks */
};

/* A text for a ROOM_E* code. */
const char *room_strerror(int);
/* The epoch of a locked room (NULL: of the arena): it changes only when
 * the room's history had to start again (roomd started from empty; in
 * cluster mode, Redis lost what the room had), so a client that sees
 * another one knows its room is new. */
uint64_t room_epoch(struct room *);
/* A number naming a locked room alike on every host (its rid on one host,
 * its epoch in cluster mode), never that of another room; like the rid,
 * it changes when the room's copy is made again.  Never bit 63. */
uint64_t room_key(struct room *);
/*
 * Create a room of dialect d with the given id; it comes back locked, so
 * its creator can set it up before anyone can find it.  addr is the
 * creating client's address when max_rooms_per_ip applies to it, else
 * NULL.  Returns 0, ROOM_EEXIST, ROOM_ELIMIT (that address made too many),
 * ROOM_EINVAL (a bad id) or ROOM_ENOSPC.
 */
int	 room_create(const struct dialect *d, const char *id,
	    const uint64_t *addr, struct room **);
/* The same with a random id of len characters of alphabet, written to id
 * (len + 1 bytes); retries while an id is taken. */
int	 room_create_unique(const struct dialect *, const char *alphabet,
	    size_t len, const uint64_t *addr, char *id, struct room **);
/* Find a room by dialect and id: 0 or ROOM_ENOENT. */
int	 room_find(const struct dialect *, const char *id, struct room_ref *);
/* room_find, then room_lock: 0 or as either. */
int	 room_find_lock(const struct dialect *, const char *id,
	    struct room_ref *, struct room **);
/* Up to max references to rooms of d (NULL: of every dialect). */
size_t	 room_list(const struct dialect *d, struct room_ref *, size_t max);
/*
 * Lock a room found earlier: 0, or ROOM_ENOENT once it is deleted.  One
 * hold of the lock is one transaction of a bounded size: a few members
 * added or removed and a few records published (the arena's journal
 * holds 32 stores; more is a bug that aborts the process).  Code that
 * changes a room much, unlocks and locks it again between changes.
 */
int	 room_lock(const struct room_ref *, struct room **);
/* Commit the changes and release the lock; appends reach the members. */
void	 room_unlock(struct room *);
/*
 * Lock this host's copy of a room to read it, and to change what is this
 * host's alone (its connections' counts, what a worker has read): the
 * fan-out's reads.  On one host the same as room_lock; in cluster mode no
 * transaction with the other hosts, so nothing shared may change
 * (room_append refuses with ROOM_EINVAL).  Unlock with room_unlock.
 */
int	 room_lock_view(const struct room_ref *, struct room **);
/*
 * Delete a locked room (the lock goes with it): its log and members go,
 * and every connection to it is closed with status 1000: with the reason
 * on this worker, with "room deleted" on the others (a doorbell carries
 * no text).
 */
void	 room_delete(struct room *, const char *reason);
/* Close member mid's connections on every worker (roomctl kick). */
void	 room_kick(struct room *, uint64_t mid);
struct room_ref room_ref(struct room *);
const char *room_id(struct room *);
const struct dialect *room_dialect(struct room *);
/* The sequence of the last record appended (0: none yet). */
uint64_t room_committed(struct room *);
uint64_t room_log_bytes(struct room *);
/* Open connections to the room, on every worker. */
uint64_t room_conns(struct room *);
/* Eight words of room state that belong to the dialect. */
uint64_t room_dget(struct room *, int);
void	 room_dset(struct room *, int, uint64_t);
/* A room set closing lets nobody in any more. */
void	 room_set_closing(struct room *);
int	 room_closing(struct room *);
/* When a room without connections is deleted (unix time; 0: never). */
void	 room_set_expires(struct room *, uint64_t);
/* When a room of dialect d left without connections now expires. */
uint64_t room_idle_expiry(const struct dialect *d);

/* A room password: only a salted SHA-256 of it is kept. */
int	 room_has_password(struct room *);
int	 room_set_password(struct room *, const char *);
/* 1 if pw opens the room (any pw opens a room without one), else 0. */
int	 room_check_password(struct room *, const char *pw);
/* join_failures_per_minute: has addr (NULL: exempt) given this room's
 * password wrongly that often within the minute?  The count is kept
 * across workers. */
int	 room_password_blocked(struct room *, const uint64_t *addr);
void	 room_password_failed(struct room *, const uint64_t *addr);

/*
 * Members.  A member has a fresh secret token and uuid unless given; the
 * name is at most MEMBER_NAME_MAX bytes (the dialect checks its own
 * limit).  Adding returns 0, ROOM_ELIMIT (room_max_members), ROOM_EINVAL
 * or ROOM_ENOSPC, or in cluster mode ROOM_EUNAVAIL: a join is committed
 * to Redis at once, with what the transaction changed before it, and
 * Redis refusing undoes them all; the lookups 0 or ROOM_ENOENT.
 */
int	 room_member_add(struct room *, const char *name, uint64_t role,
	    struct room_member *);
int	 room_member_add_id(struct room *, const char *name, uint64_t role,
	    const char *uid, const char *token, struct room_member *);
/* The member with this uuid, if token is its token (constant time). */
int	 room_member_check(struct room *, const char *uid, const char *token,
	    struct room_member *);
int	 room_member_by_name(struct room *, const char *, struct room_member *);
int	 room_member_by_token(struct room *, const char *,
	    struct room_member *);
int	 room_member_by_mid(struct room *, uint64_t, struct room_member *);
int	 room_member_by_uid(struct room *, const char *, struct room_member *);
int	 room_member_remove(struct room *, uint64_t mid);
/* Set a member's role and authorities, seen by every worker at once. */
int	 room_member_set(struct room *, uint64_t mid, uint64_t role,
	    uint64_t authorities);
size_t	 room_member_count(struct room *);
/* Call fn for each member, in the order they joined. */
void	 room_members(struct room *, void (*fn)(const struct room_member *,
	    void *), void *);
/*
 * Presence: whether this worker holds a connection of member mid (here
 * 1 or 0; a worker answers for its own connections only).  Returns 1 if
 * the member is connected on some worker afterwards, 0 if not, or
 * ROOM_ENOENT.  A member whose last connection died with its worker is
 * passed once to its dialect's member_lost.
 */
int	 room_member_here(struct room *, uint64_t mid, int here);

/* Append n records atomically; *last is the sequence of the last.  0,
 * ROOM_ELIMIT (room_log_max_bytes) or ROOM_ENOSPC; nothing on failure.
 * An append is committed at once, with what the transaction changed
 * before it (in cluster mode to Redis, or ROOM_EUNAVAIL): a worker that
 * dies after it leaves it in the room. */
int	 room_append(struct room *, const struct room_rec_in *, size_t n,
	    uint64_t *last);
/*
 * Publish a message to an audience of a relay room.  Each worker delivers
 * it to its own members in log order; the log is trimmed behind the
 * slowest worker that has members here.  0 or as room_append.
 */
int	 room_publish(struct room *, enum room_audience, uint64_t mid,
	    const char *, size_t);
/* The same with a JSON object, which it frees. */
int	 room_publish_json(struct room *, enum room_audience, uint64_t mid,
	    struct json_object *);
/* Records from seq on stay in a relay room's log (a saved state). */
void	 room_keep_from(struct room *, uint64_t seq);
/* Built with --enable-crash-points, a place where the tests may kill
 * this process (ROOMD_CRASH_AT=site); otherwise nothing. */
void	 room_crash_point(const char *site);
/* Call fn for every record after seq "after", in order, until it returns
 * nonzero.  The data is valid during the call only. */
void	 room_read(struct room *, uint64_t after, room_read_fn, void *);
/* A copy of record seq (the caller frees it), or ROOM_ENOENT. */
int	 room_read_one(struct room *, uint64_t seq, char **, size_t *);
/* This worker has read the relay room's log up to seq: trim behind it. */
void	 room_seen(struct room *, uint64_t seq);
/* This worker's count of connections to the room changes by delta (1 or
 * -1); returns the connections the room has left on every worker (in
 * cluster mode, and one for each member connected to another host). */
int	 room_conn_count(struct room *, int delta);
/* A worker slot died (master): forget its connections everywhere and
 * report the members it took with it to their dialects, once. */
void	 room_slot_dead(int slot);
/* Delete the rooms whose expiry passed (master, once a second). */
void	 room_reap(void);
/* The per-address table: connections of addr on this worker slot, unless
 * max (0: none) are open already: 0 (counted), 1 (the table is full:
 * let through uncounted) or ROOM_ELIMIT. */
int	 room_addr_conn_add(const uint64_t addr[2], uint64_t max);
void	 room_addr_conn_del(const uint64_t addr[2]);
/*
 * Lookups across rooms (each room locked in turn; the caller holds none).
 * room_member_find: the room of dialect d with a member of this uid whose
 * token is token (the lobby's identities outlive their rooms' codes): its
 * reference in *ref and a copy of the member in *m (if not NULL).
 * 0, ROOM_ENOENT (no such member, or not its token) or ROOM_ENOSPC.
 */
int	 room_member_find(const struct dialect *d, const char *uid,
	    const char *token, struct room_ref *ref, struct room_member *m);
/* What the store holds, for status and metrics; and a walk of it all. */
void	 room_usage(uint64_t *rooms, uint64_t *used, uint64_t *size,
	    uint64_t *recoveries);
int	 room_check(char *err, size_t errlen);

/* fanout.c: a worker's side of rooms */
/* A worker's view of a room some of its connections have joined. */
struct lroom {
	LIST_ENTRY(lroom)	 entry;
	struct room_ref		 ref;
	const struct dialect	*dialect;
	int			 shard;		/* cluster mode: its Redis */
	LIST_HEAD(, conn)	 conns;
	uint64_t		 seen;		/* relay: log read up to here */
};
/* Doorbells between workers (proc.c carries them). */
enum doorbell_type {
	DOORBELL_APPEND = 1,	/* a room's log grew to seq */
	DOORBELL_CLOSE_ROOM,	/* a room was deleted: close its members */
	DOORBELL_KICK,		/* close member seq's connections in room */
};
struct doorbell {
	uint32_t	 type;
	uint32_t	 from;		/* sending slot */
	uint64_t	 rid;
	uint64_t	 off;
	uint64_t	 seq;
};
/*
 * A connection of this worker joins a locked room as member mid: it is
 * counted there, the member is present here, and records appended from
 * now on reach it.  0 or ROOM_ENOSPC.
 */
int	 fanout_attach(struct room *, struct conn *, uint64_t mid);
/*
 * A connection leaves its room (unlocked).  Returns the connections the
 * room has left, or -1 if it is gone; *present (if not NULL) says whether
 * its member is still connected somewhere.  With delete_if_empty a room
 * left without connections is deleted.
 */
int	 fanout_detach(struct conn *, int delete_if_empty, int *present);
/* History rooms: send conn the records after its cursor (an empty
 * message too if empty_ok), unless its output is full. */
void	 fanout_catch_up(struct conn *, int empty_ok);
/* The engine's side: a change for the slots given (and this worker if
 * local) at the end of the iteration; in the master, now. */
void	 fanout_pend(const struct doorbell *, uint64_t slots, int local);
/* A room operation of conn's failed with ROOM_EUNAVAIL (cluster mode):
 * close it 1012, so that its client comes back, maybe through another
 * host. */
void	 fanout_unavailable(struct conn *);
/* Close this worker's connections to a deleted room (1000), or to one
 * whose copy here must be made again (1012: come back). */
void	 fanout_room_gone(uint64_t rid, int code, const char *reason);
/* A doorbell from another worker or the master. */
void	 fanout_doorbell(const struct doorbell *);
/* The output of conn drained: a member behind catches up. */
void	 fanout_drained(struct conn *);
/* End of the loop iteration: deliver and ring what changed. */
void	 fanout_flush(void);
/* Once a second: the dialects' timers of the rooms this worker serves. */
void	 fanout_tick(void);

/*
 * cluster.c: the link to Redis in cluster mode (roomd.conf's cluster line;
 * doc/cluster.txt is the protocol).  Every call blocks for at most its
 * timeout; a link that failed is made again at the next call.  Only the
 * engine (room.c and the cluster files), the keepers and helpers
 * (cluster_keeper.c) and the master's roomctl room commands use it.
 */
enum { CLUSTER_COMMITS, CLUSTER_APPLIED, CLUSTER_GAPS, CLUSTER_REAPED };
struct cluster_status {		/* of one shard; the counters of all */
	int		 up;		/* a session with its lease */
	int		 suspect;	/* a call failed: only the keeper
					   calls it until it answers */
	char		 session[96];
	char		 primary[128];
	int64_t		 lease_left_ms;
	int64_t		 lag_ms;	/* the last lease renewal's round trip */
	int		 replicas;	/* the primary's replicas online at the
					   last renewal; -1: not known yet */
	pid_t		 keeper;	/* the shard's keeper process */
	uint64_t	 reconnects, errors, commits, applied, gaps, reaped;
	uint64_t	 fenced;
};
struct redisReply;
int	 cluster_enabled(void);
const char *cluster_prefix(void);	/* of every key: "roomd:" */
/* cluster_url.c: check a cluster URL of keyword key (roomd -t): 0, or -1
 * with a message in err; "HOST:PORT" (up to a ',' or '/') into its parts:
 * 0 or -1. */
int	 cluster_parse(const char *key, const char *url, char *err,
	    size_t errlen);
int	 cluster_split(const char *hp, char *host, size_t hostlen, int *port);
int64_t	 cluster_ms(void);		/* the monotonic clock, ms */
/*
 * Shards: the cluster line is shard 0, each cluster_shard line the next.
 * Every host must list the same primaries in the same order: a room lives
 * on the shard its "dialect:id" hashes to (FNV-1a, modulo the count), and
 * each shard remembers the place and count it was first given.
 */
int	 cluster_shards(void);
int	 cluster_shard_of(const char *tag);
int	 cluster_shard_in(const char *tag, int n);	/* of n shards */
/* A link of its own to url's primary (cluster_reshard.c): NULL, having
 * logged why, or logged in, with the library; where: "host:port". */
struct redisContext *cluster_connect(const char *url, char *where,
	    size_t len);
/* cluster_reshard.c: roomd -R: move the rooms from the shards of old to
 * those of new (no host running): 0, or -1 having said why on stderr. */
int	 cluster_reshard(const struct roomd_config *old,
	    const struct roomd_config *new);
/* A command on this process's link to shard: the reply (the caller frees
 * it with freeReplyObject), or NULL if Redis could not be reached. */
struct redisReply *cluster_callv(int shard, int argc, const char **argv,
	    const size_t *lens);
struct redisReply *cluster_cmd(int shard, const char *fmt, ...);
/* The same without waiting for the reply (read, and dropped, before the
 * link's next command): 0, or -1 if it could not be sent. */
int	 cluster_send(int shard, const char *fmt, ...);
/* cluster_wait REPLICAS: 0 once that many replicas have what this link
 * wrote, else -1. */
int	 cluster_wait_replicas(int shard);
/* The host's session on shard into buf: 0 while it holds more than half
 * its lease (by its own clock, from the renewal's sending), -1 if writes
 * must stop. */
int	 cluster_session(int shard, char *buf, size_t len);
void	 cluster_count(int what, uint64_t n);
/* Workers, once a second: a mask of the shards whose lease the host lost
 * for half its term, or on which it has a new session (its presence was
 * under the old one): their rooms' clients are closed 1012. */
unsigned cluster_cut_off(void);
void	 cluster_status(int shard, struct cluster_status *);
/* How many shards hold the host's lease; *down: the first that does not,
 * or -1. */
int	 cluster_shards_up(int *down);
/* The master: before forking (map, connect, join each shard); a new
 * process drops the links it inherited but shard keep's (-1: all).  A
 * call that fails makes the shard suspect: no process but its keeper
 * calls it until the keeper's next renewal is answered.  A keeper (cluster_keeper.c):
 * one turn of its shard's work (renew the lease, join again, subscribe,
 * reap, check the copies), what came on the subscriber, and the end of
 * the lease. */
void	 cluster_init(void);
void	 cluster_forked(int keep);
void	 cluster_set_keeper(int shard, pid_t pid);
void	 cluster_keeping(int shard);
void	 cluster_keep(int shard);
int	 cluster_tick_ms(void);
int	 cluster_checking(int shard);	/* a pass of room_mirror_check */
int	 cluster_sub_fd(int shard);
void	 cluster_sub_read(int shard);
void	 cluster_leave(int shard);
/* A worker: the room lock (key, token) it may hold on shard (key NULL:
 * none).  The master, when worker slot died: 1 if it held one, taken
 * out (for the slot's next worker); a helper forked after that gives
 * it back in Redis. */
void	 cluster_hold(int shard, const char *key, const char *token);
int	 cluster_slot_dead(int slot);
void	 cluster_slot_release(void);
/* cluster_keeper.c: the master's keeper processes, one per shard. */
void	 cluster_keepers_start(void);
/* pid was collected: 1 if it was a keeper or a helper (a helper that
 * died before its job was done is forked again). */
int	 cluster_keeper_died(pid_t pid, int status, int stopping);
void	 cluster_keepers_respawn(void);
void	 cluster_keepers_signal(int sig);
void	 cluster_keepers_stop(void);
/* fn(arg) in a helper process; done(arg) in the master once it is done
 * (fn may run twice: a helper that dies before exiting 0 is forked
 * again, up to a few times). */
void	 cluster_helper(const char *name, void (*fn)(void *),
	    void (*done)(void *), void *arg);
int	 cluster_helping(void);

/*
 * room_master.c (and room_shard: room_cluster.c): the engine's cluster
 * side.  A host's arena holds a mirror of the rooms it serves; these keep
 * it in step with Redis.  The master calls them.
 */
/* A transaction published on a room's channel (its key base). */
void	 room_mirror_message(const char *room, const char *msg, size_t len);
/* Catch every mirror of shard's rooms up with the log (after a
 * resubscribe, and now and then in case a message was lost): a pass
 * started (start) or gone on with, a slice of about 10 ms at a time, so
 * that the keeper renews its lease and reads its channel between them
 * (one round trip per room).  1 while the pass goes on. */
int	 room_mirror_check(int shard, int start);
/* Forget dead session s's presence in room base (of shard); hand the
 * members lost in every room of shard to their dialects, once. */
void	 room_mirror_reap(int shard, const char *base, const char *s);
void	 room_mirror_lost_all(int shard);
/* The shard of a room (0 on one host). */
int	 room_shard(struct room *);

/* stats.c: the daemon's counters, summed over every process */
enum stats_counter {
	STAT_CONNECTIONS,	/* accepted */
	STAT_CONNECTIONS_OPEN,	/* gauge */
	STAT_HTTP_REQUESTS,
	STAT_BYTES_IN,
	STAT_BYTES_OUT,
	STAT_WORKER_RESTARTS,
	STAT_DOORBELLS,		/* rung to other workers */
	/* Webhooks and join checks (webhook.c, authhook.c) */
	STAT_WEBHOOKS_SENT,
	STAT_WEBHOOKS_RETRIED,
	STAT_WEBHOOKS_DROPPED,
	STAT_AUTH_CHECKS,
	STAT_AUTH_REFUSED,
	STAT_AUTH_FAILED,
	STAT_NCOUNTERS
};
enum stats_dialect_counter {
	STAT_D_WEBSOCKETS_OPEN,	/* gauge */
	STAT_D_MESSAGES_IN,
	STAT_D_MESSAGES_OUT,	/* frames queued to clients */
	STAT_D_APPENDS,		/* op log records */
	STAT_D_NCOUNTERS
};
void	 stats_add(enum stats_counter, int64_t);
void	 stats_dadd(unsigned dialect, enum stats_dialect_counter, int64_t);
uint64_t stats_get(enum stats_counter);
uint64_t stats_dget(unsigned dialect, enum stats_dialect_counter);

/* dialect.c */
/* What a dialect's api_publish answers besides its status. */
struct api_result {
	struct json_object	*reply;		/* the 200 answer, {"ok":true} */
	const char		*code;		/* on an error */
	const char		*message;
};
struct dialect {
	const char	*name;
	unsigned	 id;
	const char	*default_mount;
	/* An HTTP request under the mount; sub is the path after it. */
	void		(*http)(struct conn *, struct http_req *, const char *sub);
	/* May this upgrade go ahead?  0, or an HTTP status to refuse. */
	int		(*ws_accept)(struct conn *, struct http_req *,
			    const char *sub);
	void		(*ws_open)(struct conn *, struct http_req *,
			    const char *sub);
	void		(*ws_message)(struct conn *, int binary,
			    const char *, size_t);
	void		(*ws_close)(struct conn *);
	/*
	 * A history dialect (not relay) writes its members' messages: record
	 * number i of one message into buf, or with rec NULL the end of a
	 * message of i records.  The fan-out cuts messages at about
	 * output_buffer_bytes and shares one among members at one cursor.
	 */
	void		(*frame_add)(struct evbuffer *buf,
			    const struct room_rec *rec, int i);
	/*
	 * A member whose last connection was lost with its worker (or host),
	 * its room locked; once per member.  It runs where the loss is
	 * noticed (the master, for a worker), so it may publish, change and
	 * remove members but has no connection to touch, and it must not
	 * delete the room.
	 */
	void		(*member_lost)(struct room *,
			    const struct room_member *);
	/* Once a second, for each room with members on this worker. */
	void		(*tick)(const struct room_ref *);
	/* Seconds a room without connections is kept (NULL: room_ttl). */
	int		(*idle_ttl)(void);
	/*
	 * Is an AUD_TAG record (its tag in target) for this connection?  It
	 * may first send the connection what the record shows it missed
	 * (the chat: a channel message whose relay died with its sender's
	 * worker, from the channel's history).
	 */
	int		(*relay_match)(struct conn *, const struct room_rec *);
	/*
	 * The server API's publish (api.c), NULL where the dialect has
	 * none: body, the request's JSON object, becomes what the dialect's
	 * own clients receive, from the system sender (api_sender), in the
	 * room, which is locked and stays so.  Returns 200 with the
	 * answer's members added to res->reply, or an HTTP error status
	 * with res->code and res->message (static strings) and nothing
	 * published.
	 */
	int		(*api_publish)(struct room *, struct json_object *body,
			    struct api_result *res);
	/*
	 * Webhooks: the name of room id as the dialect's users know it,
	 * into name; 0, or -1 for a room that is none of theirs (an
	 * internal one).  NULL: the id itself.
	 */
	int		(*room_name)(const char *id, char *name, size_t len);
	/*
	 * Dialects whose rooms relay messages (room_publish) rather than
	 * keep a history set relay: their logs are trimmed once every
	 * worker read them but never from room_keep_from's seq on (in
	 * cluster mode Redis keeps about the last 1000 entries, and those
	 * from the keep point on).  room_relays, if set, says which of
	 * their rooms relay; the others keep their whole log as the
	 * history (the chat: only its server room relays, its channels
	 * keep their messages).
	 */
	int		 relay;
	int		(*room_relays)(const char *id);
};

const struct dialect *dialect_find(const char *);
const struct dialect *dialect_find_id(unsigned);
const struct dialect *dialect_at(size_t);
const struct mount *dialect_route(const char *path, const char **sub);
extern const struct dialect dialect_canvas;
extern const struct dialect dialect_chat;
extern const struct dialect dialect_classroom;
extern const struct dialect dialect_echo;
extern const struct dialect dialect_lobby;
extern const struct dialect dialect_screenshare;

/* api.c: the server API (roomd.conf: api_listen, api_key) */
/* The master: bind api_listen before the workers fork (they all accept
 * on the one socket).  The socket, or -1 having logged why. */
int	 api_listen_open(const struct roomd_config *);
/* A worker: a request that came on api_listen, whatever its path. */
void	 api_http(struct conn *, struct http_req *);
/* For a dialect's api_publish: set res's error, return status. */
int	 api_fail(struct api_result *res, int status, const char *code,
	    const char *message);
/* A locked room as the API and roomctl describe it: dialect, id, its
 * members (a list, or their number), connections and log. */
struct json_object *api_room_json(struct room *, int with_members);

/* health.c: liveness and readiness (metrics_listen: /healthz, /readyz) */
/* The master, before forking: the page of the workers' heartbeats.
 * 0, or -1 having logged why. */
int	 health_open(void);
/* A worker: its loop turns; at least once a second while it serves. */
void	 health_beat(void);
/* The master, once a second: the arena walk, every arena_walk_interval. */
void	 health_tick(void);
/* Is roomd ready to serve?  1, or 0 with a one-line reason in why. */
int	 health_ready(const struct worker_info *, char *why, size_t);
/* The cluster link: 1 when it is up (a session whose lease holds) or no
 * cluster is configured, else 0 with the reason in why. */
int	 health_cluster_ready(char *why, size_t);

/* jwt.c */
struct json_object *jwt_verify_hs(const char *token, const char *secret,
	    char *err, size_t errlen);
struct json_object *jwt_verify_jwks(const char *token, struct json_object *,
	    int *unknown_kid, char *err, size_t errlen);
struct json_object *jwt_peek(const char *token);
char	*jwt_sign_hs256(struct json_object *claims, const char *secret);
int	 jwt_b64url_encode(const void *, size_t, char *, size_t);
int	 jwt_b64url_decode(const char *, size_t, unsigned char *, size_t);

/* fetch.c: requests to sign-in providers and hooks, on a worker's loop */
typedef void (*fetch_cb)(int status, const char *body, size_t len, void *);
int	 fetch(const char *url, const char *form, const char *bearer,
	    fetch_cb, void *);
/*
 * POST a JSON body to url with extra headers (name, value, ..., NULL),
 * the whole exchange bounded by timeout seconds; no redirect followed,
 * nothing logged.  cb runs once, later (status 0: no answer, and
 * fetch_error() during cb says why).  -1 if it could not start.
 */
int	 fetch_json(const char *url, const char *body, size_t len,
	    const char *const *headers, int timeout, fetch_cb, void *);
const char *fetch_error(void);

/* authhook.c: join checks asked of the application (auth_hook) */
struct authhook_query {
	const struct dialect *dialect;
	const char	*action;	/* "join", "connect", "enter" */
	const char	*room;		/* NULL: none */
	const char	*name;		/* NULL: none */
	const char	*user;		/* a lasting user id; NULL: none */
	int		 host;		/* joins as host or admin */
};
struct authhook_answer {
	int			 allow;
	int			 failed;	/* no valid answer: the policy */
	const char		*reason;	/* why not; never NULL if !allow */
	const char		*name;		/* a new name; NULL: keep it */
	struct json_object	*answer;	/* the answer; NULL if failed */
};
typedef void (*authhook_cb)(struct conn *, struct authhook_answer *,
	    void *arg);
/* In the callback: the dialect says whether it can take what the answer
 * asks for (a name, authorities); if not, the answer is a failure. */
void	 authhook_validate(struct authhook_answer *, int valid);
void	 authhook_handshake(struct conn *, const struct authhook_answer *);
/* Has dialect d an auth_hook? */
int	 authhook_enabled(const struct dialect *d);
/*
 * Ask conn's dialect's auth_hook about q.  0: it has none, go on now.
 * 1: conn is held (nothing more is read from it) until cb(conn, answer,
 * arg) runs, later, with the answer or with auth_hook_on_failure's
 * decision; if conn closes first cb never runs.  free_arg(arg) (if not
 * NULL) runs after either.  -1 without memory.
 */
int	 authhook_ask(struct conn *, const struct authhook_query *,
	    authhook_cb cb, void *arg, void (*free_arg)(void *));

/* webhook.c: events sent to the application's webhook URLs */
enum webhook_event {
	WEBHOOK_ROOM_CREATED,
	WEBHOOK_ROOM_DELETED,
	WEBHOOK_MEMBER_JOINED,
	WEBHOOK_MEMBER_LEFT
};
/* A member as an event names it: its id, name and whether it hosts. */
struct webhook_member {
	const char	*id;
	const char	*name;
	int		 host;
};
/*
 * An event of dialect d in room (named as the dialect's users know it):
 * m for a member event, else NULL; reason (or NULL) why a room went or a
 * member left.  Never blocks: queued in a worker, handed to a worker by
 * the master; what cannot be queued is counted and logged.
 */
void	 webhook_emit(const struct dialect *d, enum webhook_event,
	    const char *room, const struct webhook_member *m,
	    const char *reason);
/* A room event from the engine, by room id (d->room_name names it). */
void	 webhook_room(const struct dialect *d, enum webhook_event,
	    const char *id, const char *reason);
/* An event the master handed to this worker (proc.c). */
void	 webhook_forwarded(const char *body, size_t len);
/* The worker stops: drop (and count) what was not sent. */
void	 webhook_stop(void);
/* "sha256=" and the hex of HMAC-SHA256(secret, ts "." body) into sig
 * (at least 72 bytes).  0, or -1. */
int	 webhook_sign(const char *secret, const char *ts, const char *body,
	    size_t len, char *sig, size_t siglen);

/* oauth.c: signing in to the chat */
struct chat_user {
	char	 uid[MEMBER_UID_LEN + 1];
	char	 name[ROOM_ID_MAX + 1];	/* 1 to 64 characters */
};
void	 oauth_http(struct conn *, struct http_req *, const char *sub);
int	 oauth_identify(struct http_req *, struct chat_user *);

/* util.c */
int	 json_parse(const char *, size_t, struct json_object **);
const char *json_text(struct json_object *, size_t *);
#define JSON_QUOTE_MAX(len)	(6 * (len) + 2)
size_t	 json_quote(char *, const char *, size_t);
const char *json_get_string(struct json_object *, const char *key);
int	 util_token(char *, size_t);
int	 util_uuid(char *);
int	 util_sha1_base64(const char *, size_t, char *, size_t);
/* 1 if the two strings are equal, else 0, in a time that does not tell
 * how much of them agrees, nor whether their lengths do (API keys). */
int	 util_secret_equal(const char *, const char *);
void	 util_sha256(const void *, size_t, const void *, size_t, uint8_t *);
int	 util_query_get(const char *query, const char *key, char *, size_t);
int	 util_valid_id(const char *, size_t max);
int	 util_valid_utf8(const uint8_t *, size_t);
int	 util_parse_size(const char *, uint64_t *);
uint64_t util_now(void);

#endif /* ROOMD_H */
