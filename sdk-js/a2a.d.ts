import type { Artifact, Message, TaskState } from "./types.js";
export interface Response {
  taskId: string | null;
  contextId: string | null;
  state: TaskState;
  message: Message | null;
  artifacts: Artifact[];
}
export function sendText(peer: string, text: string): { text: string; state: TaskState; response: Response };
