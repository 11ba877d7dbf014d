/**
 * An error caused by the user's input or environment (a missing folder, a bad flag).
 * The CLI prints its message as one line, without a stack trace.
 */
export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserError';
  }
}

/** One line describing why an error happened, for CLI output and skip reports. */
export function errorLine(err: unknown): string {
  const message = (err instanceof Error ? err.message : String(err)).split('\n')[0].trim();
  // The wasm engine aborts (or trips over its own state afterwards) when its 4 GB heap runs out.
  if ((err instanceof Error && err.name === 'RuntimeError') || /^Aborted\(/.test(message)) {
    return `the wasm engine stopped (${message.replace(/\. Build with -sASSERTIONS.*$/, '')}), most likely out of memory: its heap is capped at 4 GB; use a smaller --batch-size or --accumulate`;
  }
  return message;
}

/** Escapes text for SVG/XML (captions drawn on images and charts). */
export function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
