export function get(key: string): Uint8Array | null;
export function getJson<T = unknown>(key: string): T | null;
export function set(key: string, value: unknown): void;
export function remove(key: string): void;
export function keys(prefix?: string): string[];
