export { createApiMetrics, type ApiMetrics } from './api-metrics.js';
export { httpMetrics } from './http-metrics.js';
