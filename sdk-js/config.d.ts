export function get(key: string, fallback?: string | null): string | null;
export function require(key: string): string;
export function all(): Record<string, string>;
