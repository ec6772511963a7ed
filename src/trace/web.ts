import type { TraceSource } from './client.js';
import type { TraceItem } from './printer.js';
export async function startWebView(_o: { sockets: string[]; sources: TraceSource[]; host: string; port: number }): Promise<{ push(item: TraceItem): void; close(): Promise<void>; url: string }> {
  throw new Error('web view: not yet');
}
