export function startEchoServer(options?: {
  port?: number;
  onToolCall?: (params: Record<string, unknown>) => void;
}): Promise<{ url: string; close(): Promise<void> }>;
