// Starts the offline JupyterLab build (jupyterlab/) the way a user does, through scripts/lab.sh, on a free
// localhost port, and reads the URL with its token from what it prints, as a user copies it.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

import { REPO_ROOT } from './helpers';

export interface LabServer {
  /** http://127.0.0.1:PORT */
  base: string;
  token: string;
  /** Everything the server printed so far. */
  log(): string;
  /** GET (or DELETE) on the server's REST API, with the token. */
  api(method: 'GET' | 'DELETE', route: string): Promise<unknown>;
  /** Shuts the kernels down, then the server (its whole process group); resolves when it has exited. */
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

/**
 * `npm run lab -- --notebook-dir=DIR --port=P --no-browser` with the offline build picked. Jupyter's own
 * folders (config, data, runtime, Lab settings and workspaces) go under `jupyterHome`, so the user's are
 * neither read nor written; `env` reaches the kernels (the notebooks' BOAT_* parameters).
 */
export async function startLab(
  notebookDir: string,
  jupyterHome: string,
  env: Record<string, string>,
  timeoutMs = 60_000,
): Promise<LabServer> {
  const port = await freePort();
  for (const d of ['config', 'data', 'runtime', 'settings', 'workspaces'])
    fs.mkdirSync(path.join(jupyterHome, d), { recursive: true });
  const child = spawn(
    'bash',
    [
      path.join(REPO_ROOT, 'scripts', 'lab.sh'),
      `--notebook-dir=${notebookDir}`,
      '--ip=127.0.0.1',
      `--port=${port}`,
      '--ServerApp.port_retries=0',
      '--no-browser',
    ],
    {
      cwd: REPO_ROOT,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        BOAT_LAB_FRONTEND: 'build',
        JUPYTER_CONFIG_DIR: path.join(jupyterHome, 'config'),
        JUPYTER_DATA_DIR: path.join(jupyterHome, 'data'),
        JUPYTER_RUNTIME_DIR: path.join(jupyterHome, 'runtime'),
        JUPYTERLAB_SETTINGS_DIR: path.join(jupyterHome, 'settings'),
        JUPYTERLAB_WORKSPACES_DIR: path.join(jupyterHome, 'workspaces'),
        ...env,
      },
    },
  );
  let output = '';
  child.stdout.on('data', (b: Buffer) => (output += b.toString()));
  child.stderr.on('data', (b: Buffer) => (output += b.toString()));
  const pattern = new RegExp(`http://127\\.0\\.0\\.1:${port}/lab\\?token=([0-9a-f]+)`);
  const deadline = Date.now() + timeoutMs;
  let token = '';
  while (!token) {
    const m = pattern.exec(output);
    if (m) token = m[1];
    else if (child.exitCode !== null) throw new Error(`the Lab server exited (${child.exitCode}):\n${output}`);
    else if (Date.now() > deadline) {
      signalGroup(child, 'SIGKILL');
      throw new Error(`the Lab server printed no URL with a token within ${timeoutMs / 1000} s:\n${output}`);
    } else await new Promise((r) => setTimeout(r, 200));
  }
  const base = `http://127.0.0.1:${port}`;
  const api = async (method: 'GET' | 'DELETE', route: string): Promise<unknown> => {
    const res = await fetch(`${base}${route}`, { method, headers: { Authorization: `token ${token}` } });
    if (!res.ok) throw new Error(`${method} ${route}: HTTP ${res.status}`);
    return res.status === 204 ? null : res.json();
  };
  return {
    base,
    token,
    log: () => output,
    api,
    async stop() {
      if (child.exitCode !== null) return;
      try {
        for (const s of (await api('GET', '/api/sessions')) as { id: string }[])
          await api('DELETE', `/api/sessions/${s.id}`);
      } catch {
        // The server is already going: SIGTERM below shuts its kernels down too.
      }
      signalGroup(child, 'SIGTERM');
      if (!(await waitForExit(child, 15_000))) {
        signalGroup(child, 'SIGKILL');
        await waitForExit(child, 5_000);
      }
    },
  };
}

/** Processes (other than this one) whose command line contains `marker`: a server, kernel or browser left behind. */
export function processesMentioning(marker: string): string[] {
  if (!fs.existsSync('/proc')) return [];
  const found: string[] = [];
  for (const pid of fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n) && Number(n) !== process.pid)) {
    try {
      const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      if (cmdline.includes(marker)) found.push(`${pid}: ${cmdline.slice(0, 200)}`);
    } catch {
      // The process ended while we looked.
    }
  }
  return found;
}
