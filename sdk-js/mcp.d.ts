import type { McpContent, McpTool } from "./types.js";
export interface ToolResult<T = unknown> {
  text: string;
  structured: T | null;
  isError: boolean;
  content: McpContent[];
}
export function callTool<T = unknown>(server: string, tool: string, args?: object): ToolResult<T>;
export function listTools(server: string): McpTool[];
