// onebox.deploy app for Node.js, deployed by the Molecule scenario `apps` and
// shown in docs/recipes.md: Debian's nodejs (18.20), core modules only. The
// release directory runs it as /usr/bin/node server.js.
'use strict';
const http = require('http');
const net = require('net');

const IDLE_GRACE = 500; // ms an idle keep-alive connection may still send a request
const DRAIN_TIMEOUT = 8000; // ms, below the site's drain_timeout (10 s)
let ready = false;
let draining = false;

// /livez: 200 while alive, warm-up and drain included; /readyz: 200 only while serving.
function health(req, res) {
  let code;
  if (req.url === '/livez') code = 200;
  else if (req.url === '/readyz') code = ready && !draining ? 200 : 503;
  else return false;
  const text = code === 200 ? 'ok\n' : 'not ready\n';
  res.writeHead(code, { 'Content-Type': 'text/plain', 'Content-Length': text.length });
  res.end(text);
  return true;
}

const body = JSON.stringify({
  site: process.env.ONEBOX_SITE, version: process.env.ONEBOX_VERSION, pid: process.pid, server: 'node',
});
const server = http.createServer((req, res) => {
  if (draining) res.setHeader('Connection', 'close'); // Node closes the connection after this response
  if (health(req, res)) return;
  res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
});

// The health port first, so that the deploy can watch the warm-up (host:port,
// [v6]:port or a bare port). Without a port of its own, the public socket
// answers /livez and /readyz.
const healthAddr = process.env.ONEBOX_HEALTH_LISTEN;
if (healthAddr && healthAddr !== process.env.ONEBOX_LISTEN) {
  const [, host, port] = /^(?:\[?(.*?)\]?:)?(\d+)$/.exec(healthAddr);
  http.createServer((req, res) => health(req, res) || res.writeHead(404).end())
    .listen({ host: host || undefined, port: Number(port) });
}

// The socket systemd passes as fd 3, when it is meant for this process.
const inherited = process.env.LISTEN_PID === String(process.pid) && process.env.LISTEN_FDS === '1';
delete process.env.LISTEN_PID;
delete process.env.LISTEN_FDS;
delete process.env.LISTEN_FDNAMES;

// Warm-up before listen(): meanwhile connections wait in the socket's backlog
// (strategy restart) or go to the old instance (overlap).
setTimeout(() => {
  // listen() on the inherited socket sets Node's backlog, 511 unless given ({ fd: 3, backlog }).
  server.listen(inherited ? { fd: 3 } : { host: '127.0.0.1', port: 8080 }, () => {
    ready = true;
    console.log(inherited ? 'serving the socket from systemd' : 'no socket from systemd: listening on 127.0.0.1:8080');
  });
}, 1000 * Number(process.env.APP_WARMUP || '0.8'));

function drain() {
  if (draining) return;
  draining = true; // /readyz 503, every response from now on closes its connection
  if (!server.listening) process.exit(0); // stopped while warming up: nothing accepted
  // Stop accepting (what waits in the backlog is for the next process) and exit
  // once the last connection is closed. Not server.close(): on Node 19+, and on
  // Debian's 18.20 too, it also closes idle keep-alive connections at once.
  net.Server.prototype.close.call(server, () => process.exit(0));
  // Idle grace, then close the connections that stayed idle.
  setTimeout(() => server.closeIdleConnections(), IDLE_GRACE);
  setTimeout(() => process.exit(0), DRAIN_TIMEOUT).unref();
}
process.on('SIGTERM', drain);
process.on('SIGINT', drain);
