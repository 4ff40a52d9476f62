// tests/bench/peers/sio.js: the Socket.IO peer of the cluster benchmark.
//
// Socket.IO 4 with @socket.io/redis-streams-adapter, the way its
// documentation sets it up: run two (or more) of these processes on one
// Redis and a room's members may connect to any of them; a broadcast to a
// room goes through a Redis stream to every process.  It is what roomd's
// cluster mode is measured against (W1-cluster in BENCHMARKS.md), driven by
// the same load generator (-P socketio):
//
//   client -> "join" ROOM           the member joins ROOM; answered "joined"
//   client -> "pub" ROOM [ACTIONS]  every member of ROOM, on every process,
//                                   the sender included, is sent "a" ACTIONS
//
// usage: node sio.js PORT REDIS_URL [HOST]
'use strict';

const http = require('http');
const { Server } = require('socket.io');
const { createClient } = require('redis');
const { createAdapter } = require('@socket.io/redis-streams-adapter');

const port = Number(process.argv[2] || 8091);
const redisUrl = process.argv[3] || 'redis://127.0.0.1:6379';
const host = process.argv[4] || '127.0.0.1';

async function main() {
  const redis = createClient({ url: redisUrl });
  redis.on('error', (e) => console.error('sio: redis:', e.message));
  await redis.connect();
  const server = http.createServer();
  const io = new Server(server, {
    adapter: createAdapter(redis),
    transports: ['websocket'],
    serveClient: false,
    perMessageDeflate: false,
    maxHttpBufferSize: 4 << 20,
  });
  io.on('connection', (socket) => {
    socket.on('join', (room) => {
      if (typeof room !== 'string')
        return;
      socket.join(room);
      socket.emit('joined');
    });
    socket.on('pub', (room, actions) => {
      if (typeof room === 'string')
        io.to(room).emit('a', actions);
    });
  });
  server.listen(port, host, () => console.log(`sio: listening on ${host}:${port}`));
  const stop = () => { io.close(); redis.quit().finally(() => process.exit(0)); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((e) => { console.error('sio:', e); process.exit(1); });
