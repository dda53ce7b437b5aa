import type { Card, Event, Failure, Message, Reply, Skill } from "./types.js";
export type * from "./types.js";

export function reject(reason: unknown): Failure;
export function retry(reason: unknown): Failure;
export function isFailure(value: unknown): value is Failure;
export function failureOf(error: unknown, what: string): Failure;
export function checked<T>(what: string, call: () => T): T;
export function decodeText(bytes: ArrayLike<number>): string;
export function encodeText(text: string): Uint8Array;
export function toBytes(value: unknown): Uint8Array;
export function position(event: Event): string;
export function eventText(event: Event): string;
export function eventJson<T = unknown>(event: Event, check?: (value: any) => string | undefined | null): T;
export function eventKey(event: Event): string | null;
export function eventHeader(event: Event, name: string): string | null;
export function messageText(message: Pick<Message, "parts">): string;
export function messageData<T = unknown>(message: Message): T | null;
export function textReply(text: string, data?: unknown): Reply;
export function card(
  name: string,
  version: string,
  options?: { description?: string; skills?: Skill[] },
): Card;
export const INPUT_SCHEMA_TAG: string;
export function skill(
  id: string,
  name: string,
  options?: {
    description?: string;
    tags?: string[];
    examples?: string[];
    /** A JSON Schema with `type: "object"`: what the skill takes as an MCP tool. */
    inputSchema?: Record<string, unknown>;
  },
): Skill;
