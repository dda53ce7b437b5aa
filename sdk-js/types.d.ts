// The types of agenthost:agent@0.1.0 (wit/agent.wit) as componentize-qjs maps them: records are
// objects with camelCase fields, a variant is `{ tag, val }`, an option is the value or null,
// `list<u8>` a Uint8Array, u64 a number (bigint where precision demands).

export interface Header { key: string; value: Uint8Array }

export interface Event {
  topic: string;
  partition: number;
  offset: number | bigint;
  key: Uint8Array | null;
  payload: Uint8Array;
  headers: Header[];
  timestampMs: number | bigint;
  correlationId: string;
  attempt: number;
}

export type Failure = { tag: "retry"; val: string } | { tag: "reject"; val: string };
export type HostError = { tag: "denied"; val: string } | { tag: "failed"; val: string };

export interface Skill { id: string; name: string; description: string; tags: string[]; examples: string[] }
export interface Card { name: string; description: string; version: string; skills: Skill[] }

export interface FilePart {
  name: string | null;
  mediaType: string | null;
  bytes: Uint8Array | null;
  uri: string | null;
}
export type Part =
  | { tag: "text"; val: string }
  | { tag: "data"; val: string }
  | { tag: "file"; val: FilePart };

export type Role = "user" | "agent";
export interface Message {
  messageId: string;
  role: Role;
  parts: Part[];
  taskId: string | null;
  contextId: string | null;
}
export interface Artifact {
  artifactId: string;
  name: string | null;
  description: string | null;
  parts: Part[];
}
export type TaskState =
  | "submitted" | "working" | "input-required" | "auth-required"
  | "completed" | "failed" | "canceled" | "rejected";
export interface Reply { message: Message | null; artifacts: Artifact[]; state: TaskState }

/** What an agent module exports as `agent`. A handler fails by throwing a `Failure`. */
export interface Agent {
  card(): Card;
  onEvent(event: Event): void;
  onMessage(message: Message): Reply;
}

export interface Receipt { topic: string; partition: number; offset: number | bigint }

export type McpContent =
  | { tag: "text"; val: string }
  | { tag: "image" | "audio"; val: { data: Uint8Array; mimeType: string } }
  | { tag: "link"; val: { uri: string; name: string; mimeType: string | null } }
  | {
      tag: "resource";
      val: { uri: string; mimeType: string | null; text: string | null; blob: Uint8Array | null };
    };

export interface McpTool {
  name: string;
  title: string | null;
  description: string | null;
  inputSchema: string;
  outputSchema: string | null;
}
