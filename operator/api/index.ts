// The EtcdCluster API: types, defaults, the validation rules (TypeScript and CEL from one table) and
// the CRD object. Imports nothing outside this folder.
export * from './types.js';
export { DEFAULTS, withDefaults } from './defaults.js';
export { ALLOWED_REPLICAS, EXTRA_ARG_PATTERN, MESSAGES, OWNED_FLAGS, RULES, VERSION_PATTERN, type Rule } from './rules.js';
export { isQuantity, parseQuantity, QuantityError, QUANTITY_PATTERN } from './quantity.js';
export { problemsOf, SpecInvalid, validateSpec } from './validate.js';
export { crd, CRD_NAME, openApiSchema } from './schema.js';
