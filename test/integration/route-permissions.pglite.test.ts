import { testBackends } from '../support/database.js';
import { describeRoutePermissions } from './route-permissions.js';

if (testBackends().includes('pglite')) describeRoutePermissions('pglite');
