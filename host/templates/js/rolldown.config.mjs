// Bundles agent.js and what it imports (the SDK, package.json, npm packages) into one ES module
// for componentize-qjs. The WIT interfaces are not modules on disk: the component provides them.
export default {
  input: "agent.js",
  platform: "neutral",
  external: /^(agenthost|wasi):/,
  output: { format: "esm" },
};
