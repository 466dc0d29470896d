import type { AppDeps, AppInstance } from '../platform/app.js';
import { principalOf } from '../platform/http/authenticate.js';
import { PageQuery, pageOf, toPageRequest } from '../platform/http/pagination.js';
import { commonErrors, IdParams } from '../platform/http/schemas.js';
import { AdminUser, passwordSchemas } from './auth.schema.js';

/** Instance administration of accounts: instance admins only. */
export function registerAdminUserRoutes(app: AppInstance, deps: AppDeps): void {
  const { accounts } = deps.domain;
  const { CreateUserBody, UpdateUserBody } = passwordSchemas(deps.config.auth.password);
  const tags = ['admin'];

  app.get('/admin/users', {
    schema: { tags, querystring: PageQuery, response: { 200: pageOf(AdminUser), ...commonErrors } },
    handler: async (request) =>
      accounts.listUsers(principalOf(request), toPageRequest(request.query)),
  });

  app.post('/admin/users', {
    schema: {
      tags,
      description:
        'Creates an account, usable at once whatever the sign-up mode (the only way in when SWITCHYARD_SIGN_UP=closed). 409 ACCOUNT_EXISTS when the address has one.',
      body: CreateUserBody,
      response: { 201: AdminUser, ...commonErrors },
    },
    handler: async (request, reply) => {
      const user = await accounts.createUser(principalOf(request), request.body);
      void reply.status(201);
      return user;
    },
  });

  app.patch('/admin/users/:id', {
    schema: {
      tags,
      description:
        'Disables or enables an account, or sets its password. Disabling or a new password signs the user out everywhere at once; a new password also lifts a sign-in lockout.',
      params: IdParams,
      body: UpdateUserBody,
      response: { 200: AdminUser, ...commonErrors },
    },
    handler: async (request) =>
      accounts.updateUser(principalOf(request), request.params.id, request.body),
  });
}
