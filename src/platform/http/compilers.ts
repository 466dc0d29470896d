import { Ajv, type Options as AjvOptions, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { SerializerSelector } from '@fastify/fast-json-stringify-compiler';
import type { FastifySchemaCompiler } from 'fastify';

// ajv-formats is CommonJS with a default export; under NodeNext it arrives wrapped.
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

const COMMON: AjvOptions = {
  removeAdditional: false,
  useDefaults: true,
  allErrors: false,
  strict: false,
};

/**
 * Request validation. Query strings, path parameters and headers arrive as text, so their
 * values are coerced to the schema's types; JSON bodies are not: `{"name": 123}` is a wrong
 * type, never the string "123".
 */
export function createValidatorCompiler(): FastifySchemaCompiler<unknown> {
  const coercing = addFormats(new Ajv({ ...COMMON, coerceTypes: 'array' }));
  const strict = addFormats(new Ajv({ ...COMMON, coerceTypes: false }));
  return ({ schema, httpPart }) =>
    compileOnFirstUse(() => (httpPart === 'body' ? strict : coercing).compile(schema as object));
}

interface Validator {
  (data: unknown): boolean;
  errors?: ValidateFunction['errors'];
}

/**
 * A validator compiled when a route is first called rather than at start: compiling every
 * route's schemas took about half of a warm start. Fastify reads `errors` after a failed call.
 */
function compileOnFirstUse(compile: () => ValidateFunction): Validator {
  let compiled: ValidateFunction | undefined;
  const validator: Validator = (data) => {
    compiled ??= compile();
    const isValid = compiled(data);
    validator.errors = compiled.errors;
    return isValid;
  };
  return validator;
}

type SerializerFactory = ReturnType<typeof SerializerSelector>;

/**
 * Fastify's response serializer factory, compiling each schema object once: every route
 * shares the error schemas, and compiling them per route made start-up slow.
 */
export function cachingSerializerFactory(): SerializerFactory {
  const selector = SerializerSelector();
  return (externalSchemas, options) => {
    const compile = selector(externalSchemas, options);
    const cache = new WeakMap<object, ReturnType<typeof compile>>();
    return (route) => {
      const key = route.schema as object;
      let serializer = cache.get(key);
      if (serializer === undefined) {
        serializer = compile(route);
        cache.set(key, serializer);
      }
      return serializer;
    };
  };
}
