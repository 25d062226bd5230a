/**
 * A route's middlewares, composed once at compile time into two hook arrays
 * (`null` when empty, so the hot path skips them, as fastify does).
 */
export class MiddlewareChain {
    names;
    requestHooks;
    responseHooks;
    constructor(middlewares) {
        this.names = middlewares.map((m) => m.name);
        const req = middlewares.filter((m) => m.onRequest).map((m) => m.onRequest.bind(m));
        const res = middlewares.filter((m) => m.onResponse).map((m) => m.onResponse.bind(m)).reverse();
        this.requestHooks = req.length > 0 ? req : null;
        this.responseHooks = res.length > 0 ? res : null;
    }
    /** Runs the request hooks; returns a promise only if a hook did. Throws what a hook throws. */
    runRequest(ctx) {
        const hooks = this.requestHooks;
        if (hooks === null)
            return;
        return runFrom(hooks, 0, ctx);
    }
    runResponse(ctx, head) {
        const hooks = this.responseHooks;
        if (hooks === null)
            return;
        for (let i = 0; i < hooks.length; i++)
            hooks[i](ctx, head);
    }
}
function runFrom(hooks, start, ctx) {
    for (let i = start; i < hooks.length; i++) {
        const r = hooks[i](ctx);
        if (r !== undefined)
            return r.then(() => runFrom(hooks, i + 1, ctx));
    }
}
//# sourceMappingURL=chain.js.map