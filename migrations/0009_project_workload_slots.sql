-- Each project's own number, never shared and never reused: the local runtime runs a project's
-- builds and instances as the operating-system user SWITCHYARD_WORKLOAD_UID_BASE + this slot,
-- so no two projects share a user. Existing projects are numbered in creation order.
CREATE SEQUENCE projects_workload_slot_seq AS integer MINVALUE 1;
ALTER TABLE projects
  ADD COLUMN workload_slot integer NOT NULL DEFAULT nextval('projects_workload_slot_seq')
    CHECK (workload_slot > 0);
ALTER SEQUENCE projects_workload_slot_seq OWNED BY projects.workload_slot;
CREATE UNIQUE INDEX projects_workload_slot_key ON projects (workload_slot);
