// A real coturn (Debian's `coturn` package, installed by scripts/browser-deps) for the TURN
// tests: started by the test on free loopback ports, with its own pid file, database and a
// self-signed certificate, and stopped by it. Never the system service.
//
// Configured as Huddle's README describes for production (`use-auth-secret` with
// `static-auth-secret`, a realm, fingerprints, no CLI, no DTLS), with what only a test on one
// machine needs: it listens and relays on 127.0.0.1 and may relay to loopback peers
// (`allow-loopback-peers`; Huddle's relay is on 127.0.0.1 here).

import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';

const debug = !!process.env.HUDDLE_E2E_DEBUG;

export function turnserverPath() {
  for (const candidate of ['/usr/bin/turnserver', '/usr/sbin/turnserver']) {
    if (existsSync(candidate)) return candidate;
  }
  throw new Error('coturn is missing: run scripts/browser-deps');
}

/** A port free for both TCP and UDP on 127.0.0.1 (TURN listens on both). */
async function freePort() {
  for (let attempt = 0; attempt < 20; attempt += 1) {
    const server = net.createServer();
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address();
    const socket = dgram.createSocket('udp4');
    const udpFree = await new Promise((resolve) => {
      socket.once('error', () => resolve(false));
      socket.bind(port, '127.0.0.1', () => resolve(true));
    });
    socket.close();
    await new Promise((resolve) => server.close(resolve));
    if (udpFree) return port;
  }
  throw new Error('no port free for both TCP and UDP');
}

/**
 * A self-signed certificate for 127.0.0.1 (openssl), and the base64 SHA-256 of its public key
 * for Chromium's `--ignore-certificate-errors-spki-list`.
 */
function selfSignedCertificate(dir) {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
    '-keyout', key, '-out', cert], { stdio: 'ignore' });
  const publicKey = execFileSync('openssl', ['x509', '-pubkey', '-noout', '-in', cert]);
  const der = execFileSync('openssl', ['pkey', '-pubin', '-outform', 'der'], { input: publicKey });
  const spki = execFileSync('openssl', ['dgst', '-sha256', '-binary'], { input: der }).toString('base64');
  return { cert, key, spki };
}

/**
 * Starts coturn; resolves once its UDP, TCP and TLS listeners are open. `urls` are the TURN
 * URIs of each transport, `secret` its static-auth-secret, `spki` the certificate's key hash.
 */
export async function startCoturn() {
  const binary = turnserverPath();
  const dir = mkdtempSync(path.join(tmpdir(), 'huddle-coturn-'));
  const { cert, key, spki } = selfSignedCertificate(dir);
  const secret = randomBytes(24).toString('hex');
  const port = await freePort();
  let tlsPort = await freePort();
  while (tlsPort === port) tlsPort = await freePort();
  const args = [
    '-n', // no configuration file: everything is on this command line
    '--listening-ip=127.0.0.1', `--listening-port=${port}`, `--tls-listening-port=${tlsPort}`,
    '--relay-ip=127.0.0.1',
    '--use-auth-secret', `--static-auth-secret=${secret}`, '--realm=huddle.test',
    '--allow-loopback-peers', // the test's relay is on 127.0.0.1; never in production
    '--no-multicast-peers', '--fingerprint', '--no-cli', '--no-dtls', '--no-software-attribute',
    `--cert=${cert}`, `--pkey=${key}`,
    `--pidfile=${path.join(dir, 'turnserver.pid')}`, `--userdb=${path.join(dir, 'turndb')}`,
    '--log-file=stdout', '--simple-log', '--verbose',
  ];
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const killOnExit = () => child.kill('SIGKILL');
  process.on('exit', killOnExit);
  child.once('exit', () => process.off('exit', killOnExit));
  const log = [];
  const waiting = new Set([`UDP listener opened on: 127.0.0.1:${port}`, `listener opened on : 127.0.0.1:${tlsPort}`]);
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`coturn did not open its listeners in 10 s:\n${log.join('\n')}`)), 10_000);
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`coturn exited (${code}):\n${log.join('\n')}`)); });
    const onLine = (line) => {
      log.push(line);
      if (log.length > 2000) log.shift();
      if (debug) process.stderr.write(`[coturn] ${line}\n`);
      for (const wanted of waiting) if (line.includes(wanted)) waiting.delete(wanted);
      if (!waiting.size) { clearTimeout(timer); resolve(); }
    };
    readline.createInterface({ input: child.stdout }).on('line', onLine);
    readline.createInterface({ input: child.stderr }).on('line', onLine);
  });
  return {
    secret,
    spki,
    urls: {
      udp: `turn:127.0.0.1:${port}?transport=udp`,
      tcp: `turn:127.0.0.1:${port}?transport=tcp`,
      tls: `turns:127.0.0.1:${tlsPort}?transport=tcp`,
    },
    /** Lines coturn logged so far (the last 2000). */
    log: () => log.join('\n'),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
