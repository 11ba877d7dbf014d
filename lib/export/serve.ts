/**
 * `boat serve`: a folder on localhost with Node's http module, for trying an export before putting it
 * on a static host. GET and HEAD only; a path that resolves outside the folder (../, encoded or not,
 * or through a symbolic link) is refused with 403.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';

import { requireDirectory, UserError } from '../util';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.bin': 'application/octet-stream',
  '.css': 'text/css',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.webp': 'image/webp',
  '.svg': 'image/svg+xml',
};

export interface ServeOptions {
  dir: string;
  port?: number;
  host?: string;
}

export interface RunningServer {
  url: string;
  server: http.Server;
  close(): Promise<void>;
}

/** The file under `root` that `urlPath` names, or null when it would fall outside `root`. */
export function resolveInside(root: string, urlPath: string): string | null {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath.split('?')[0].split('#')[0]);
  } catch {
    return null;
  }
  if (decoded.includes('\0') || decoded.split(/[\\/]/).includes('..')) return null;
  const file = path.resolve(root, '.' + path.posix.normalize('/' + decoded));
  return file === root || file.startsWith(root + path.sep) ? file : null;
}

function send(res: http.ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
  res.end(text + '\n');
}

export function serveFolder(options: ServeOptions): Promise<RunningServer> {
  requireDirectory(options.dir, 'folder to serve');
  const root = fs.realpathSync(path.resolve(options.dir));
  const port = options.port ?? 8080;
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new UserError(`--port must be 0 to 65535, got ${port}`);
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'method not allowed');
    let file = resolveInside(root, req.url ?? '/');
    if (file === null) return send(res, 403, 'forbidden: outside the served folder');
    try {
      if (fs.statSync(file).isDirectory()) file = path.join(file, 'index.html');
      const real = fs.realpathSync(file);
      if (real !== root && !real.startsWith(root + path.sep))
        return send(res, 403, 'forbidden: outside the served folder');
      const stat = fs.statSync(real);
      if (!stat.isFile()) return send(res, 404, 'not found');
      res.writeHead(200, {
        'content-type': TYPES[path.extname(real).toLowerCase()] ?? 'application/octet-stream',
        'content-length': stat.size,
        'cache-control': 'no-cache',
      });
      if (req.method === 'HEAD') return res.end();
      fs.createReadStream(real).pipe(res);
    } catch {
      send(res, 404, 'not found');
    }
  });
  const host = options.host ?? '127.0.0.1';
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'EADDRINUSE' ? new UserError(`port ${port} is in use; choose another with --port`) : err),
    );
    server.listen(port, host, () => {
      const address = server.address() as AddressInfo;
      resolve({
        url: `http://${host}:${address.port}/`,
        server,
        close: () =>
          new Promise((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}
