// Admin: users — list, create (optionally with a web UI password), reset a password, disable/enable.
import { useState } from "preact/hooks";
import { createUser, listUsers, setUserActive, setUserPassword, type NewUser, type User } from "../api/client";
import { Loading, ProblemView } from "../components/common";
import { formatAge } from "../format";
import { useNow, usePolled } from "../hooks";

export function CreateUserForm({ onCreated }: { onCreated: (user: NewUser) => void }) {
  const [username, setUsername] = useState("");
  const [role, setRole] = useState<"user" | "admin">("user");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | undefined>();
  const submit = (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    createUser({ username: username.trim(), role, password: password ? password : null })
      .then((made) => {
        setUsername("");
        setPassword("");
        setRole("user");
        onCreated(made);
      })
      .catch((err: Error) => setError(err))
      .finally(() => setBusy(false));
  };
  return (
    <form class="card" onSubmit={submit} aria-labelledby="new-user">
      <h2 id="new-user">New user</h2>
      <label for="new-username">Username</label>
      <input id="new-username" required value={username} autoComplete="off"
        onInput={(e) => setUsername(e.currentTarget.value)} />
      <label for="new-role">Role</label>
      <select id="new-role" value={role} onChange={(e) => setRole(e.currentTarget.value as "user" | "admin")}>
        <option value="user">user</option>
        <option value="admin">admin</option>
      </select>
      <label for="new-password">Password (optional: lets them sign in here)</label>
      <input id="new-password" type="password" autoComplete="new-password" value={password}
        onInput={(e) => setPassword(e.currentTarget.value)} />
      <ProblemView error={error} />
      <p>
        <button type="submit" class="primary" disabled={busy}>
          Create user
        </button>
      </p>
    </form>
  );
}

function PasswordReset({ user, onDone }: { user: User; onDone: (message: string) => void }) {
  const [password, setPassword] = useState("");
  const [error, setError] = useState<Error | undefined>();
  const id = `pw-${user.username}`;
  return (
    <form
      class="inline-form"
      onSubmit={(event) => {
        event.preventDefault();
        setError(undefined);
        setUserPassword(user.username, password)
          .then(() => onDone(`Password of ${user.username} set.`))
          .catch((err: Error) => setError(err));
      }}
    >
      <label for={id}>New password for {user.username}</label>
      <input id={id} type="password" autoComplete="new-password" required value={password}
        onInput={(e) => setPassword(e.currentTarget.value)} />
      <button type="submit" class="small">Set password</button>
      <ProblemView error={error} />
    </form>
  );
}

export function UserTable({ users, now, onChanged }: { users: User[]; now: number; onChanged: (m: string) => void }) {
  const [resetting, setResetting] = useState<string | null>(null);
  const [error, setError] = useState<Error | undefined>();
  const toggle = (user: User) => {
    setError(undefined);
    setUserActive(user.username, !user.is_active)
      .then((u) => onChanged(`${u.username} ${u.is_active ? "enabled" : "disabled"}.`))
      .catch((err: Error) => setError(err));
  };
  return (
    <>
      <ProblemView error={error} />
      <table class="users responsive" aria-label="Users">
        <thead>
          <tr>
            <th scope="col">Username</th>
            <th scope="col">Role</th>
            <th scope="col">State</th>
            <th scope="col">Web sign-in</th>
            <th scope="col">Keypairs</th>
            <th scope="col">Created</th>
            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody>
          {users.map((user) => (
            <tr key={user.id} data-user={user.username}>
              <td data-label="Username">{user.username}</td>
              <td data-label="Role">{user.role}</td>
              <td data-label="State">{user.is_active ? "active" : "disabled"}</td>
              <td data-label="Web sign-in">{user.has_password ? "password set" : "no password"}</td>
              <td data-label="Keypairs">{user.keypairs}</td>
              <td data-label="Created">{user.created_at ? `${formatAge(user.created_at, now)} ago` : "—"}</td>
              <td data-label="Actions">
                <button type="button" class="small" aria-expanded={resetting === user.username}
                  aria-label={`Reset password of ${user.username}`}
                  onClick={() => setResetting(resetting === user.username ? null : user.username)}>
                  Reset password
                </button>{" "}
                <button type="button" class="small" onClick={() => toggle(user)}
                  aria-label={`${user.is_active ? "Disable" : "Enable"} ${user.username}`}>
                  {user.is_active ? "Disable" : "Enable"}
                </button>
                {resetting === user.username && (
                  <PasswordReset user={user} onDone={(m) => {
                    setResetting(null);
                    onChanged(m);
                  }} />
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

export function UsersPage() {
  const users = usePolled(() => listUsers(), 0);
  const now = useNow(30_000);
  const [message, setMessage] = useState("");
  const [made, setMade] = useState<NewUser | null>(null);
  const changed = (m: string) => {
    setMessage(m);
    users.reload();
  };
  return (
    <main id="main">
      <h1>Users</h1>
      <p class="notice" role="status" hidden={!message && !made}>
        {message}
        {made && (
          <>
            {" "}Access key <code class="copyable">{made.access_key}</code>, secret key{" "}
            <code class="copyable">{made.secret_key}</code> (shown only now).
          </>
        )}
      </p>
      <ProblemView error={users.error} />
      {users.data ? (
        <UserTable users={users.data.items} now={now} onChanged={(m) => {
          setMade(null);
          changed(m);
        }} />
      ) : (
        !users.error && <Loading what="users" />
      )}
      <CreateUserForm onCreated={(u) => {
        setMade(u);
        changed(`User ${u.username} created.`);
      }} />
    </main>
  );
}
