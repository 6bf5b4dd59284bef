import { useEffect, useState } from "preact/hooks";
import { ApiError, auth, setCsrfToken, setUnauthorizedHandler, type AuthSession } from "./api/client";
import { Link, Loading, ProblemView } from "./components/common";
import { AdminPage } from "./pages/Admin";
import { LaunchPage } from "./pages/Launch";
import { ProjectsPage } from "./pages/Projects";
import { UsersPage } from "./pages/Users";
import { SessionPage } from "./pages/SessionPage";
import { SessionsPage } from "./pages/Sessions";
import { SignIn } from "./pages/SignIn";
import { VfolderListPage } from "./vfolders/VfolderList";
import { VfolderPage } from "./vfolders/VfolderPage";
import { match, navigate, useLocation } from "./router";

function NotFound() {
  return (
    <main id="main">
      <h1>Not found</h1>
      <p>
        Nothing here. <Link href="/">Back to sessions</Link>.
      </p>
    </main>
  );
}

function Page({ path, isAdmin }: { path: string; isAdmin: boolean }) {
  if (path === "/" || path === "/sessions") return <SessionsPage isAdmin={isAdmin} />;
  if (path === "/launch") return <LaunchPage />;
  const session = match("/sessions/:ref", path);
  if (session) return <SessionPage key={session.ref} sessionRef={session.ref} />;
  if (path === "/admin" || path === "/admin/agents") {
    return isAdmin ? (
      <AdminPage />
    ) : (
      <main id="main">
        <h1>Agents</h1>
        <p>Only admins see the agents.</p>
      </main>
    );
  }
  if (path === "/admin/users" || path === "/admin/projects") {
    if (!isAdmin) {
      return (
        <main id="main">
          <h1>Admins only</h1>
          <p>Only admins manage users and projects.</p>
        </main>
      );
    }
    return path === "/admin/users" ? <UsersPage /> : <ProjectsPage />;
  }
  if (path === "/vfolders") return <VfolderListPage />;
  const vfolder = match("/vfolders/:ref", path);
  if (vfolder) return <VfolderPage key={vfolder.ref} vfolderRef={vfolder.ref} />;
  return <NotFound />;
}

export function Nav({ path, session, onSignOut }: { path: string; session: AuthSession; onSignOut: () => void }) {
  const items: [string, string][] = [
    ["/", "Sessions"],
    ["/launch", "Launch"],
    ["/vfolders", "Vfolders"],
  ];
  if (session.user.role === "admin") {
    items.push(["/admin", "Agents"], ["/admin/users", "Users"], ["/admin/projects", "Projects"]);
  }
  const current = (href: string) =>
    href === "/" ? path === "/" || path.startsWith("/sessions")
      : href === "/admin" ? path === "/admin" || path === "/admin/agents" : path.startsWith(href);
  return (
    <header class="topbar">
      <a class="skip" href="#main">
        Skip to content
      </a>
      <span class="brand">Corral</span>
      <nav aria-label="Main">
        {items.map(([href, label]) => (
          <Link key={href} href={href} aria-current={current(href) ? "page" : undefined}>
            {label}
          </Link>
        ))}
      </nav>
      <span class="user">
        {session.user.username}
        {session.user.role === "admin" ? " (admin)" : ""}
        <button type="button" class="small" onClick={onSignOut}>
          Sign out
        </button>
      </span>
    </header>
  );
}

export function App() {
  const path = useLocation();
  const [session, setSession] = useState<AuthSession | null | undefined>(undefined); // undefined: checking
  const [error, setError] = useState<Error | undefined>();

  const signedIn = (s: AuthSession) => {
    setCsrfToken(s.csrf_token);
    setSession(s);
    if (path === "/login") navigate("/", true);
  };

  useEffect(() => {
    setUnauthorizedHandler(() => setSession(null));
    auth
      .session()
      .then(signedIn)
      .catch((err: unknown) => {
        if (err instanceof ApiError && (err.status === 401 || err.status === 404)) setSession(null);
        else setError(err as Error);
      });
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  if (error) {
    return (
      <main id="main">
        <ProblemView error={error} />
      </main>
    );
  }
  if (session === undefined) return <Loading what="Corral" />;
  if (session === null) return <SignIn onSignedIn={signedIn} />;
  return (
    <>
      <Nav
        path={path}
        session={session}
        onSignOut={() => {
          auth
            .logout()
            .catch(() => undefined)
            .finally(() => {
              setCsrfToken("");
              setSession(null);
            });
        }}
      />
      <Page path={path} isAdmin={session.user.role === "admin"} />
    </>
  );
}
