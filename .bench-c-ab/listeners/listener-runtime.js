export {};
//# sourceMappingURL=listener-runtime.js.map