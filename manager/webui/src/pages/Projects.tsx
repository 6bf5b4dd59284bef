// Admin: projects — list, create, and a project's members (add, remove, change role).
import { useState } from "preact/hooks";
import {
  addProjectMember,
  createProject,
  getProject,
  listProjects,
  removeProjectMember,
  setMemberRole,
  type MemberRole,
  type Project,
} from "../api/client";
import { Loading, ProblemView } from "../components/common";
import { usePolled } from "../hooks";

const ROLES: MemberRole[] = ["member", "manager"];

function CreateProjectForm({ onCreated }: { onCreated: (p: Project) => void }) {
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [error, setError] = useState<Error | undefined>();
  return (
    <form
      class="card"
      aria-labelledby="new-project"
      onSubmit={(event) => {
        event.preventDefault();
        setError(undefined);
        createProject({ name: name.trim(), description })
          .then((p) => {
            setName("");
            setDescription("");
            onCreated(p);
          })
          .catch((err: Error) => setError(err));
      }}
    >
      <h2 id="new-project">New project</h2>
      <label for="project-name">Project name</label>
      <input id="project-name" required value={name} onInput={(e) => setName(e.currentTarget.value)} />
      <label for="project-description">Description</label>
      <input id="project-description" value={description} onInput={(e) => setDescription(e.currentTarget.value)} />
      <ProblemView error={error} />
      <p>
        <button type="submit" class="primary">Create project</button>
      </p>
    </form>
  );
}

export function ProjectMembers({ name }: { name: string }) {
  const project = usePolled(() => getProject(name), 0, [name]);
  const [username, setUsername] = useState("");
  const [role, setRole] = useState<MemberRole>("member");
  const [error, setError] = useState<Error | undefined>();
  const act = (call: Promise<unknown>) => {
    setError(undefined);
    call.then(() => project.reload()).catch((err: Error) => setError(err));
  };
  const members = project.data?.members ?? [];
  return (
    <section class="card" aria-labelledby="members-head">
      <h2 id="members-head">Members of {name}</h2>
      <ProblemView error={project.error ?? error} />
      {!project.data && !project.error && <Loading what="members" />}
      {project.data && (
        <table class="members responsive" aria-label={`Members of ${name}`}>
          <thead>
            <tr>
              <th scope="col">Username</th>
              <th scope="col">Role</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {members.map((m) => (
              <tr key={m.username} data-member={m.username}>
                <td data-label="Username">{m.username}</td>
                <td data-label="Role">
                  <select aria-label={`Role of ${m.username}`} value={m.role}
                    onChange={(e) => act(setMemberRole(name, m.username, e.currentTarget.value as MemberRole))}>
                    {ROLES.map((r) => <option key={r} value={r}>{r}</option>)}
                  </select>
                </td>
                <td data-label="Actions">
                  <button type="button" class="small" aria-label={`Remove ${m.username} from ${name}`}
                    onClick={() => act(removeProjectMember(name, m.username))}>
                    Remove
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <form
        onSubmit={(event) => {
          event.preventDefault();
          act(addProjectMember(name, username.trim(), role).then(() => setUsername("")));
        }}
      >
        <h3>Add a member</h3>
        <label for="member-username">Member username</label>
        <input id="member-username" required value={username} onInput={(e) => setUsername(e.currentTarget.value)} />
        <label for="member-role">Member role</label>
        <select id="member-role" value={role} onChange={(e) => setRole(e.currentTarget.value as MemberRole)}>
          {ROLES.map((r) => <option key={r} value={r}>{r}</option>)}
        </select>
        <p>
          <button type="submit">Add member</button>
        </p>
      </form>
    </section>
  );
}

export function ProjectsPage() {
  const projects = usePolled(() => listProjects(), 0);
  const [selected, setSelected] = useState<string | null>(null);
  return (
    <main id="main">
      <h1>Projects</h1>
      <ProblemView error={projects.error} />
      {!projects.data && !projects.error && <Loading what="projects" />}
      {projects.data &&
        (projects.data.items.length === 0 ? (
          <p class="empty">No projects yet.</p>
        ) : (
          <table class="projects responsive" aria-label="Projects">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Description</th>
                <th scope="col">Members</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {projects.data.items.map((p) => (
                <tr key={p.id} data-project={p.name}>
                  <td data-label="Name">{p.name}</td>
                  <td data-label="Description">{p.description || "—"}</td>
                  <td data-label="Members">{p.member_count}</td>
                  <td data-label="Actions">
                    <button type="button" class="small" aria-pressed={selected === p.name}
                      aria-label={`Manage members of ${p.name}`} onClick={() => setSelected(p.name)}>
                      Members
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        ))}
      {selected && <ProjectMembers key={selected} name={selected} />}
      <CreateProjectForm onCreated={(p) => {
        projects.reload();
        setSelected(p.name);
      }} />
    </main>
  );
}
