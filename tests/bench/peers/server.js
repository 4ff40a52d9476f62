// tests/bench/peers/server.js: the Node peer of tests/bench.
//
// A canvas room server written the way the seed projects write one: the
// rooms and their actions live in plain in-memory arrays, and npm's `ws`
// sends every new action to every member.  It speaks roomd's canvas wire
// format (roomd-protocols(7)), so the same load generator measures both:
//
//   POST /canvas/rooms               {"host":NAME}  -> 201 {roomId,token,...}
//   POST /canvas/rooms/ID/join       {"name":NAME}  -> 200 {token,...}
//   GET  /canvas/rooms/ID/ws?token=T[&pointer=P]    WebSocket
//
// On open a member is sent every action after its pointer as one JSON
// array; each message (one action or an array of them) is appended with
// pointers 1, 2, ... and every member is sent what it has not had yet,
// one array per member, serialized once per distinct cursor.
//
// usage: node server.js PORT [HOST]
'use strict';

const http = require('http');
const crypto = require('crypto');
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2] || 8090);
const host = process.argv[3] || '127.0.0.1';
const rooms = new Map();	// roomId -> room

function reply(res, code, obj) {
  const body = obj === undefined ? '' : JSON.stringify(obj);
  res.writeHead(code, { 'Content-Type': 'application/json' });
  res.end(body);
}

function newToken(room, name) {
  const token = crypto.randomBytes(16).toString('hex');
  room.tokens.set(token, name);
  return token;
}

function view(room) {
  return { roomId: room.id, host: room.host,
    guests: room.guests.map((name) => ({ name })) };
}

function readBody(req, cb) {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (d) => { body += d; });
  req.on('end', () => {
    let obj = null;
    try { obj = JSON.parse(body); } catch (e) { obj = null; }
    cb(obj);
  });
}

const server = http.createServer((req, res) => {
  const m = req.url.match(/^\/canvas\/rooms(?:\/([\w-]+)(?:\/(join))?)?\/?$/);
  if (!m) return reply(res, 404, { error: 'not_found' });
  if (req.method === 'GET' && !m[1])
    return reply(res, 200, [...rooms.values()].map((r) =>
      Object.assign(view(r), { locked: r.password !== null })));
  if (req.method !== 'POST') return reply(res, 405, { error: 'method' });
  readBody(req, (b) => {
    if (b === null || typeof b !== 'object')
      return reply(res, 400, { error: 'bad_request' });
    if (!m[1]) {
      if (typeof b.host !== 'string') return reply(res, 400,
        { error: 'bad_request' });
      const id = typeof b.roomId === 'string' ? b.roomId :
        crypto.randomUUID();
      if (rooms.has(id)) return reply(res, 409, { error: 'room_exists' });
      const room = { id, host: b.host, password: b.password ?? null,
        guests: [], tokens: new Map(), actions: [], members: new Set() };
      rooms.set(id, room);
      return reply(res, 201, Object.assign(view(room),
        { password: room.password, token: newToken(room, b.host) }));
    }
    const room = rooms.get(m[1]);
    if (!room) return reply(res, 404, { error: 'no_such_room' });
    if (typeof b.name !== 'string') return reply(res, 400,
      { error: 'bad_request' });
    if (room.password !== null && b.password !== room.password)
      return reply(res, 403, { error: 'wrong_password' });
    room.guests.push(b.name);
    return reply(res, 200, Object.assign(view(room),
      { token: newToken(room, b.name) }));
  });
});

// Every action after "after", as the JSON text of one array.
function frame(room, after) {
  return JSON.stringify(room.actions.slice(after));
}

function deliver(room) {
  const cache = new Map();	// cursor -> text
  const end = room.actions.length;
  for (const ws of room.members) {
    if (ws.cursor >= end) continue;
    let text = cache.get(ws.cursor);
    if (text === undefined) {
      text = frame(room, ws.cursor);
      cache.set(ws.cursor, text);
    }
    ws.send(text);
    ws.cursor = end;
  }
}

const wss = new WebSocketServer({ noServer: true, maxPayload: 1 << 20 });

server.on('upgrade', (req, socket, head) => {
  const url = new URL(req.url, 'http://x');
  const m = url.pathname.match(/^\/canvas\/rooms\/([\w-]+)\/ws$/);
  const room = m && rooms.get(m[1]);
  const token = url.searchParams.get('token');
  if (!room || !room.tokens.has(token)) {
    socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
    return;
  }
  const p = url.searchParams.get('pointer');
  const pointer = p === null ? 0 : Number(p);
  if (!Number.isInteger(pointer) || pointer < 0 ||
      pointer > room.actions.length) {
    socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.cursor = pointer;
    room.members.add(ws);
    ws.send(frame(room, pointer));
    ws.cursor = room.actions.length;
    ws.on('message', (data) => {
      let msg;
      try { msg = JSON.parse(data.toString()); } catch (e) {
        ws.send(JSON.stringify({ error: 'bad_json' }));
        return;
      }
      if (!Array.isArray(msg)) msg = [msg];
      for (const a of msg) {
        if (a === null || typeof a !== 'object' || Array.isArray(a)) {
          ws.send(JSON.stringify({ error: 'bad_action' }));
          return;
        }
      }
      for (const a of msg) {
        a.pointer = room.actions.length + 1;
        room.actions.push(a);
      }
      deliver(room);
    });
    ws.on('close', () => { room.members.delete(ws); });
    ws.on('error', () => {});
  });
});

server.listen(port, host);
process.on('SIGTERM', () => process.exit(0));
