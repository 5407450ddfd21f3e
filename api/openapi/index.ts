export { buildOpenApiDocument, type OpenApiDocument } from './build-document.js';
export { OPERATIONS, type OperationSpec } from './operations.js';
