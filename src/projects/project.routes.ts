import { Type } from '@sinclair/typebox';
import type { AppDeps, AppInstance } from '../platform/app.js';
import { principalOf } from '../platform/http/authenticate.js';
import { PageQuery, pageOf, toPageRequest } from '../platform/http/pagination.js';
import { commonErrors, ProjectParams } from '../platform/http/schemas.js';
import {
  AddMemberBody,
  CreateEnvironmentBody,
  CreateProjectBody,
  Environment,
  EnvironmentParams,
  Invitation,
  InvitationParams,
  Member,
  MemberAdded,
  MemberParams,
  Project,
  UpdateEnvironmentBody,
  UpdateMemberBody,
  UpdateProjectBody,
} from './project.schema.js';

export function registerProjectRoutes(app: AppInstance, deps: AppDeps): void {
  const { projects, deployments } = deps.domain;
  const tags = ['projects'];

  app.post('/projects', {
    schema: { tags, body: CreateProjectBody, response: { 201: Project, ...commonErrors } },
    handler: async (request, reply) => {
      const project = await projects.create(principalOf(request), request.body);
      void reply.status(201);
      return project;
    },
  });

  app.get('/projects', {
    schema: { tags, querystring: PageQuery, response: { 200: pageOf(Project), ...commonErrors } },
    handler: async (request) => projects.list(principalOf(request), toPageRequest(request.query)),
  });

  app.get('/projects/:project', {
    schema: { tags, params: ProjectParams, response: { 200: Project, ...commonErrors } },
    handler: async (request) => projects.get(principalOf(request), request.params.project),
  });

  app.patch('/projects/:project', {
    schema: {
      tags,
      params: ProjectParams,
      body: UpdateProjectBody,
      response: { 200: Project, ...commonErrors },
    },
    handler: async (request) =>
      projects.update(principalOf(request), request.params.project, request.body),
  });

  app.delete('/projects/:project', {
    schema: { tags, params: ProjectParams, response: { 204: Type.Null(), ...commonErrors } },
    handler: async (request, reply) => {
      await projects.remove(
        principalOf(request),
        request.params.project,
        deployments.hasActiveWorkloads,
      );
      void reply.status(204);
      return null;
    },
  });

  registerEnvironmentRoutes(app, deps);
  registerMemberRoutes(app, deps);
  registerInvitationRoutes(app, deps);
}

function registerEnvironmentRoutes(app: AppInstance, deps: AppDeps): void {
  const { projects } = deps.domain;
  const tags = ['environments'];

  app.get('/projects/:project/environments', {
    schema: {
      tags,
      params: ProjectParams,
      querystring: PageQuery,
      response: { 200: pageOf(Environment), ...commonErrors },
    },
    handler: async (request) =>
      projects.listEnvironments(
        principalOf(request),
        request.params.project,
        toPageRequest(request.query),
      ),
  });

  app.post('/projects/:project/environments', {
    schema: {
      tags,
      params: ProjectParams,
      body: CreateEnvironmentBody,
      response: { 201: Environment, ...commonErrors },
    },
    handler: async (request, reply) => {
      const environment = await projects.createEnvironment(
        principalOf(request),
        request.params.project,
        request.body.name,
      );
      void reply.status(201);
      return environment;
    },
  });

  app.get('/projects/:project/environments/:env', {
    schema: { tags, params: EnvironmentParams, response: { 200: Environment, ...commonErrors } },
    handler: async (request) =>
      projects.getEnvironmentFor(principalOf(request), request.params.project, request.params.env),
  });

  app.patch('/projects/:project/environments/:env', {
    schema: {
      tags,
      params: EnvironmentParams,
      body: UpdateEnvironmentBody,
      response: { 200: Environment, ...commonErrors },
    },
    handler: async (request) =>
      projects.renameEnvironment(
        principalOf(request),
        request.params.project,
        request.params.env,
        request.body.name,
      ),
  });

  app.delete('/projects/:project/environments/:env', {
    schema: { tags, params: EnvironmentParams, response: { 204: Type.Null(), ...commonErrors } },
    handler: async (request, reply) => {
      await projects.deleteEnvironment(
        principalOf(request),
        request.params.project,
        request.params.env,
      );
      void reply.status(204);
      return null;
    },
  });
}

function registerMemberRoutes(app: AppInstance, deps: AppDeps): void {
  const { projects } = deps.domain;
  const tags = ['members'];

  app.get('/projects/:project/members', {
    schema: {
      tags,
      params: ProjectParams,
      querystring: PageQuery,
      response: { 200: pageOf(Member), ...commonErrors },
    },
    handler: async (request) =>
      projects.listMembers(
        principalOf(request),
        request.params.project,
        toPageRequest(request.query),
      ),
  });

  app.post('/projects/:project/members', {
    schema: {
      tags,
      params: ProjectParams,
      body: AddMemberBody,
      response: { 201: MemberAdded, ...commonErrors },
    },
    handler: async (request, reply) => {
      const added = await projects.addMember(
        principalOf(request),
        request.params.project,
        request.body,
      );
      void reply.status(201);
      return added;
    },
  });

  app.patch('/projects/:project/members/:userId', {
    schema: {
      tags,
      params: MemberParams,
      body: UpdateMemberBody,
      response: { 200: Member, ...commonErrors },
    },
    handler: async (request) =>
      projects.updateMember(
        principalOf(request),
        request.params.project,
        request.params.userId,
        request.body,
      ),
  });

  app.delete('/projects/:project/members/:userId', {
    schema: { tags, params: MemberParams, response: { 204: Type.Null(), ...commonErrors } },
    handler: async (request, reply) => {
      await projects.removeMember(
        principalOf(request),
        request.params.project,
        request.params.userId,
      );
      void reply.status(204);
      return null;
    },
  });
}

function registerInvitationRoutes(app: AppInstance, deps: AppDeps): void {
  const { projects } = deps.domain;
  const tags = ['members'];

  app.get('/projects/:project/invitations', {
    schema: {
      tags,
      params: ProjectParams,
      querystring: PageQuery,
      response: { 200: pageOf(Invitation), ...commonErrors },
    },
    handler: async (request) =>
      projects.listInvitations(
        principalOf(request),
        request.params.project,
        toPageRequest(request.query),
      ),
  });

  app.delete('/projects/:project/invitations/:invitationId', {
    schema: { tags, params: InvitationParams, response: { 204: Type.Null(), ...commonErrors } },
    handler: async (request, reply) => {
      await projects.revokeInvitation(
        principalOf(request),
        request.params.project,
        request.params.invitationId,
      );
      void reply.status(204);
      return null;
    },
  });
}
