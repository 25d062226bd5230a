/**
 * Portico as a library: what a service written in TypeScript or JavaScript
 * uses to take part in a Portico deployment. The gateway itself runs as the
 * `portico` command.
 */
export { registerService, type RegisterServiceOptions, type ServiceRegistration, type ServiceCheck } from './discovery/register-service.js';
