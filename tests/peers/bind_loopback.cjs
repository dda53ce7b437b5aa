// Loaded with `node --require` into the MCP conformance suite: its mock servers call listen()
// without a host, which binds every interface; the tests keep to loopback. dns.lookup answers
// IP literals synchronously so server.address() is valid right after listen(), as the suite
// expects.
const net = require("net");
const dns = require("dns");
const lookup = dns.lookup;
dns.lookup = function (host, options, callback) {
  if (typeof options === "function") {
    callback = options;
    options = {};
  }
  const family = net.isIP(host);
  if (family) {
    return options && options.all
      ? callback(null, [{ address: host, family }])
      : callback(null, host, family);
  }
  return lookup.call(this, host, options, callback);
};
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === "number" && typeof args[1] !== "string") {
    args.splice(1, 0, "127.0.0.1");
  } else if (args[0] && typeof args[0] === "object" && !args[0].host && !args[0].path && !args[0]._handle) {
    args[0] = { ...args[0], host: "127.0.0.1" };
  } else if (args.length === 0 || typeof args[0] === "function") {
    args.unshift(0, "127.0.0.1");
  }
  return listen.apply(this, args);
};
