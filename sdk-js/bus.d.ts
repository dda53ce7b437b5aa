import type { Event, Receipt } from "./types.js";
export interface PublishOptions { key?: unknown; headers?: Record<string, string> }
export function publish(topic: string, payload: unknown, options?: PublishOptions): Receipt;
export function send(topic: string, payload: unknown, options?: PublishOptions): void;
export function forward(topic: string, event: Event): Receipt;
