"""The manager's aiohttp application: public API, agent API, OpenAPI document."""
from __future__ import annotations

import functools

from aiohttp import web

from corral.common import api_models as api
from corral.common.version import VERSION

from ..session_requests import CreateSessionRequest
from ..app_auth import TOKEN_QUERY
from . import cluster, internal, projects, services, sessions, ssh_keys, terminal, users, vfolders
from . import resource_groups, resource_policies
from . import capacity, queue, usage
from .context_access import SERVICES_KEY, USER_KEY, ApiServices, ctx_of
from . import auth as web_auth
from corral.common.api_models.users import WebSignIn
from corral.common.http_problems import make_problem_middleware
from .routes import Handler, Route, build_openapi
from . import storage_relay
from .storage_relay import add_storage_relay_routes
from .webui import add_webui_routes

API = "/api/v1"

VF = f"{API}/vfolders"
VFOLDER_ROUTES: list[Route] = [
    Route("GET", f"{API}/storage/hosts", vfolders.list_vfolder_hosts, "Storage hosts (proxy:volume) for new vfolders",
          tag="vfolders", response=api.StorageHostList),
    Route("POST", VF, vfolders.create_vfolder, "Create a vfolder (yours, or a project's you are a member of)",
          tag="vfolders", body=vfolders.CreateVfolderRequest, response=api.Vfolder,
          responses={201: "Created", 400: "Invalid request", 403: "Not a member of the project",
                     404: "No such storage host, or no such project the caller is in",
                     409: "Name already in use", 503: "Storage proxy unreachable"}),
    Route("GET", VF, vfolders.list_vfolders, "The caller's vfolders, their projects' and those shared with them",
          tag="vfolders", response=api.VfolderList,
          query=(("trashed", "1 to list the caller's vfolders in the trash instead"),)),
    Route("GET", f"{VF}/{{ref}}", vfolders.get_vfolder, "Vfolder details with usage and quota", tag="vfolders",
          response=api.Vfolder,
          query=(("usage", "0 to skip asking the storage proxy for usage"),),
          responses={200: "OK", 403: "Not yours", 404: "No such vfolder"}),
    Route("PATCH", f"{VF}/{{ref}}", vfolders.update_vfolder, "Rename a vfolder or change its quota", tag="vfolders",
          body=vfolders.UpdateVfolderRequest, response=api.Vfolder,
          responses={200: "OK", 400: "Invalid request", 403: "Not the owner", 404: "No such vfolder",
                     409: "Name already in use"}),
    Route("DELETE", f"{VF}/{{ref}}", vfolders.trash_vfolder, "Move a vfolder to the trash", tag="vfolders",
          response=api.Vfolder,
          responses={200: "In the trash", 403: "Not the owner", 404: "No such vfolder",
                     409: "Mounted by an active session"}),
    Route("POST", f"{VF}/{{ref}}/restore", vfolders.restore_vfolder, "Bring a vfolder back from the trash",
          tag="vfolders", response=api.Vfolder,
          responses={200: "OK", 403: "Not the owner", 404: "No such vfolder in the trash",
                                     409: "Name taken meanwhile"}),
    Route("POST", f"{VF}/{{ref}}/purge", vfolders.purge_vfolder, "Delete a trashed vfolder and its files for good",
          tag="vfolders", response=api.Vfolder, responses={200: "Purged", 403: "Not the owner", 404: "No such vfolder",
                                     409: "Not in the trash", 503: "Storage proxy unreachable"}),
    Route("POST", f"{VF}/{{ref}}/shares", vfolders.share_vfolder, "Share a vfolder with a user (ro or rw)",
          tag="vfolders", body=vfolders.ShareRequest, response=api.Vfolder,
          responses={200: "OK", 400: "Invalid request", 403: "Not the owner", 404: "No such vfolder or user"}),
    Route("DELETE", f"{VF}/{{ref}}/shares/{{username}}", vfolders.unshare_vfolder, "Stop sharing a vfolder with a user",
          tag="vfolders", response=api.Vfolder,
          responses={200: "OK", 204: "Share dropped by its user", 403: "Not the owner",
                                     404: "No such vfolder or share"}),
    Route("POST", f"{VF}/{{ref}}/token", vfolders.vfolder_token,
          "A short-lived token for the storage proxy's file API", tag="vfolders", body=vfolders.TokenRequest,
          response=api.VfolderToken,
          responses={200: "client_url, token, vfid, expires_at", 403: "Permission above what the caller holds",
                     404: "No such vfolder"}),
]

PJ = f"{API}/projects"
PROJECT_ROUTES: list[Route] = [
    Route("POST", PJ, projects.create_project, "Create a project (admin)", tag="projects",
          body=projects.CreateProjectRequest, response=api.Project,
          responses={201: "Created", 400: "Invalid request", 403: "Not an admin", 409: "Name already in use"}),
    Route("GET", PJ, projects.list_projects, "The caller's projects (every project for admins)", tag="projects",
          response=api.ProjectList),
    Route("GET", f"{PJ}/{{name}}", projects.get_project, "Project details with members and vfolders",
          tag="projects", response=api.Project, responses={200: "OK", 404: "No such project, or not a member"}),
    Route("PATCH", f"{PJ}/{{name}}", projects.update_project,
          "Change a project's description, resource policy or fair-share weight (admin)", tag="projects",
          body=projects.UpdateProjectRequest, response=api.Project,
          responses={200: "OK", 400: "Invalid request", 403: "Not an admin", 404: "No such project",
                     422: "No such resource policy"}),
    Route("POST", f"{PJ}/{{name}}/members", projects.add_project_member,
          "Add a member (admins and project managers)", tag="projects", body=projects.AddMemberRequest,
          response=api.Project,
          responses={201: "Added", 400: "Invalid request", 403: "Not a manager of the project",
                     404: "No such project or user", 409: "Already a member"}),
    Route("PATCH", f"{PJ}/{{name}}/members/{{username}}", projects.update_project_member,
          "Change a member's role (admins and project managers)", tag="projects", body=projects.UpdateMemberRequest,
          response=api.Project,
          responses={200: "OK", 400: "Invalid request", 403: "Not a manager of the project",
                     404: "No such project, user or member", 409: "Would leave the project without a manager"}),
    Route("DELETE", f"{PJ}/{{name}}/members/{{username}}", projects.remove_project_member,
          "Remove a member (admins and project managers), or leave a project", tag="projects",
          response=api.Project,
          responses={200: "OK", 204: "The caller left the project", 403: "Not a manager of the project",
                     404: "No such project, user or member", 409: "Would leave the project without a manager"}),
]

RG = f"{API}/resource-groups"
RP = f"{API}/resource-policies"
SCHEDULING_ROUTES: list[Route] = [
    Route("GET", RG, resource_groups.list_resource_groups,
          "Resource groups: the ones the caller may use (every group, with who may use it and agent counts, "
          "for admins)", tag="scheduling", response=api.ResourceGroupList),
    Route("POST", RG, resource_groups.create_resource_group, "Create a resource group (admin)", tag="scheduling",
          body=resource_groups.CreateResourceGroupRequest, response=api.ResourceGroup,
          responses={201: "Created", 400: "Invalid request", 403: "Not an admin", 409: "Name already in use",
                     422: "No such user or project in the allowed lists"}),
    Route("GET", f"{RG}/{{name}}", resource_groups.get_resource_group, "A resource group", tag="scheduling",
          response=api.ResourceGroup, responses={200: "OK", 404: "No such group, or not one the caller may use"}),
    Route("PATCH", f"{RG}/{{name}}", resource_groups.update_resource_group,
          "Change a resource group (admin): only the fields given", tag="scheduling",
          body=resource_groups.UpdateResourceGroupRequest, response=api.ResourceGroup,
          responses={200: "OK", 400: "Invalid request", 403: "Not an admin", 404: "No such group",
                     422: "No such user or project in the allowed lists"}),
    Route("DELETE", f"{RG}/{{name}}", resource_groups.delete_resource_group,
          "Delete a resource group (admin); refused for \"default\" and while agents, active or queued sessions, "
          "or users' default group use it", tag="scheduling", response=api.ResourceGroup,
          responses={200: "Deleted (its last state)", 403: "Not an admin", 404: "No such group",
                     409: "\"default\", or still in use (the detail says by what)"}),
    Route("GET", RP, resource_policies.list_resource_policies, "Resource policies (admin)", tag="scheduling",
          response=api.ResourcePolicyList, responses={200: "OK", 403: "Not an admin"}),
    Route("POST", RP, resource_policies.create_resource_policy, "Create a resource policy (admin)",
          tag="scheduling", body=resource_policies.CreateResourcePolicyRequest, response=api.ResourcePolicy,
          responses={201: "Created", 400: "Invalid request", 403: "Not an admin", 409: "Name already in use"}),
    Route("GET", f"{RP}/{{name}}", resource_policies.get_resource_policy,
          "A resource policy, with the users and projects held to it (admin)", tag="scheduling",
          response=api.ResourcePolicy, responses={200: "OK", 403: "Not an admin", 404: "No such policy"}),
    Route("PATCH", f"{RP}/{{name}}", resource_policies.update_resource_policy,
          "Change a resource policy (admin): only the fields given; null removes a limit", tag="scheduling",
          body=resource_policies.UpdateResourcePolicyRequest, response=api.ResourcePolicy,
          responses={200: "OK", 400: "Invalid request", 403: "Not an admin", 404: "No such policy"}),
    Route("DELETE", f"{RP}/{{name}}", resource_policies.delete_resource_policy,
          "Delete a resource policy (admin); refused while a user or project is held to it", tag="scheduling",
          response=api.ResourcePolicy,
          responses={200: "Deleted (its last state)", 403: "Not an admin", 404: "No such policy",
                     409: "A user or project is held to it"}),
]

SVC = f"{API}/sessions/{{ref}}/services"
SERVICE_ROUTES: list[Route] = [
    Route("GET", SVC, services.list_services,
          "The session's services (declared by its image, and the built-in terminal) and their states",
          response=api.SessionServiceList, query=(sessions.KERNEL_QUERY,),
          responses={200: "OK", 404: "No such session", 409: "Session not RUNNING",
                     503: "The session's agent is unreachable"}),
    Route("POST", f"{SVC}/{{name}}/start", services.start_service,
          "Start a service unless it is up; with wait_s, answer once it is ready (or failed)",
          response=api.SessionService, query=(("wait_s", "seconds to wait for ready, 0-300 (0)"), sessions.KERNEL_QUERY),
          responses={200: "Its state", 404: "No such session or service", 409: "Session not RUNNING",
                     502: "The service failed to start (log_tail says why)"}),
    Route("GET", f"{SVC}/{{name}}/tcp", services.service_tcp,
          "A TCP connection to the service (websocket; binary messages carry the bytes both ways)",
          query=(sessions.KERNEL_QUERY,),
          responses={101: "Websocket: binary messages are the TCP stream; a close with code 1011 means the "
                          "connection to the session was lost",
                     400: "Not a websocket upgrade, or the terminal", 404: "No such session or service",
                     409: "Session not RUNNING", 502: "The service failed to start (log_tail says why)",
                     503: "The session's agent is unreachable"}),
    Route("POST", f"{SVC}/{{name}}/app-token", services.app_token,
          "A one-time browser link to an http service (exchanged for a cookie scoped to the session)",
          response=api.AppToken,
          responses={200: "url: open it in a browser within expires_at", 400: "Not an http service",
                     404: "No such session or service", 409: "Session not RUNNING"}),
    Route("GET", f"{API}/sessions/{{session_id}}/services/{{name}}/http/{{path}}", services.service_http,
          "The service's web app, proxied (any method; websockets too). Authenticated by the cookie a "
          "corral_token link sets, or by a signed request",
          signed=False, any_method=True,
          router_path=f"{API}/sessions/{{session_id}}/services/{{name}}/http/{{path:.*}}",
          query=((TOKEN_QUERY, "a token from app-token: sets the app cookie, then redirects without it"),),
          responses={200: "The app's answer (any status it gives)", 303: "Token accepted: cookie set",
                     401: "No valid cookie, token or signature", 404: "No such session or service",
                     409: "Session not RUNNING", 502: "The service failed (log_tail says why)"}),
]

# The web UI's sign-in. Every signed route also accepts the corral_session cookie these set (see manager.auth).
AUTH_ROUTES: list[Route] = [
    Route("POST", f"{API}/auth/login", web_auth.login,
          "Sign in to the web UI with username and password: sets the corral_session cookie (HttpOnly, "
          "SameSite=Strict, Path=/), which then authenticates any route instead of a signature",
          signed=False, tag="auth", body=web_auth.LoginRequest, response=WebSignIn,
          responses={200: "Signed in. Requests other than GET/HEAD/OPTIONS made with the cookie must send "
                          "csrf_token in the X-CSRF-Token header; websockets need a same-origin Origin header",
                     401: "Wrong username or password (the same answer for an unknown user), or user disabled",
                     429: "Too many failed logins for this username or address; Retry-After says when to retry"}),
    Route("GET", f"{API}/auth/session", web_auth.current_session,
          "The web session of the corral_session cookie: its user and CSRF token", signed=False, tag="auth",
          response=WebSignIn, responses={200: "Signed in", 401: "No cookie, or its session ended"}),
    Route("POST", f"{API}/auth/logout", web_auth.logout,
          "Sign out: end the cookie's web session and clear the cookie (needs X-CSRF-Token)", signed=False,
          tag="auth", responses={204: "Signed out (also when there was no valid session)",
                                 403: "Missing or wrong CSRF token"}),
]

PUBLIC_ROUTES: list[Route] = [
    *AUTH_ROUTES,
    Route("GET", f"{API}/health", cluster.health, "Liveness and version", signed=False, tag="cluster",
          response=api.Health),
    Route("GET", f"{API}/whoami", cluster.whoami, "The caller's identity", tag="cluster", response=api.WhoAmI),
    Route("POST", f"{API}/sessions", sessions.create_session, "Create a session", body=CreateSessionRequest,
          response=api.Session,
          responses={201: "Created", 400: "Invalid request",
                     403: "Not allowed to use the resource group or the project, or a priority above 50 "
                          "without the admin role",
                     404: "No such resource group (the detail names those the caller may use) or project",
                     409: "Name already in use, or a resource policy's limit on queued sessions reached "
                          "(type .../policy-limit-reached)",
                     422: "The group does not take this session type, or the request could never fit: no agent of "
                          "the group, or a resource policy (the detail names the limit)"}),
    Route("GET", f"{API}/sessions", sessions.list_sessions, "List the caller's sessions", response=api.SessionPage,
          query=(("status", "comma-separated statuses"), ("all", "1 to include ended sessions"),
                 ("all_users", "1 to list every user's sessions (admin only)"),
                 ("limit", "page size, 1-1000"), ("cursor", "next_cursor of the previous page")),
          responses={200: "OK", 400: "Invalid request", 403: "all_users without the admin role"}),
    # Before {ref}: aiohttp would otherwise take "events" for a session's name.
    Route("GET", f"{API}/sessions/events", sessions.sessions_events,
          "Status changes of the caller's sessions as server-sent events, from the moment of connecting",
          response_type="text/event-stream", response=api.StatusChange,
          query=(("all_users", "1 to follow every user's sessions (admin only)"),),
          responses={200: "Event stream, open until the client hangs up: first a `: subscribed` comment, then "
                          "`event: status` (with `id:`, the status history row) for each status change, data "
                          "{session_id, status, reason, at}; `: keepalive` comments when quiet. Send "
                          "Last-Event-ID to resume after a reconnect",
                     403: "all_users without the admin role"}),
    Route("GET", f"{API}/sessions/{{ref}}", sessions.get_session, "Session details with status history",
          response=api.Session,
          responses={200: "OK", 404: "No such session"}),
    Route("DELETE", f"{API}/sessions/{{ref}}", sessions.destroy_session, "Destroy a session", response=api.Session,
          responses={200: "Final: cancelled before it was placed, or it had already ended (idempotent: its "
                          "final state)",
                     202: "Terminating: its containers are being removed, then TERMINATED",
                     404: "No such session"}),
    Route("POST", f"{API}/sessions/{{ref}}/execute", sessions.execute_code, "Run code in the session's interpreter",
          body=sessions.ExecuteRequest, query=(sessions.KERNEL_QUERY,), response_type="application/x-ndjson", response=api.ExecuteEvent,
          responses={200: "Output lines, then a result line", 409: "Session not running"}),
    Route("GET", f"{API}/sessions/{{ref}}/terminal", terminal.session_terminal,
          "A shell in the session (websocket; see corral.common.terminal_protocol)",
          query=(("rows", "terminal height, 1-1000 (24)"), ("cols", "terminal width, 1-1000 (80)"),
                 ("attach", "pty id from an earlier connection's `attached` message: re-attach to that shell"),
                 sessions.KERNEL_QUERY),
          responses={101: "Websocket: binary messages carry terminal bytes both ways; text messages are JSON "
                          "control messages (resize towards the session; attached, exit, error back)",
                     400: "Not a websocket upgrade, or a bad size", 404: "No such session",
                     409: "Session not RUNNING", 502: "The agent could not open a shell",
                     503: "The session's agent is unreachable"}),
    *SERVICE_ROUTES,
    Route("POST", f"{API}/sessions/{{ref}}/interrupt", sessions.interrupt_session,
          "Interrupt the code running in the session's interpreter (SIGINT; killed if it ignores that); "
          "its execute stream then ends with status `interrupted`", response=sessions.Interrupted,
          query=(sessions.KERNEL_QUERY,),
          responses={200: "Sent (`interrupted`: false when nothing was running)", 404: "No such session",
                     409: "Session not RUNNING", 503: "The session's agent is unreachable"}),
    Route("GET", f"{API}/sessions/{{ref}}/logs", sessions.session_logs, "Container output", response=api.SessionLogs,
          query=(("follow", "1: instead of JSON, a text/plain stream (chunked) of the output so far, then new "
                            "output as it comes until the session ends"),
                 ("kernel", "one kernel's output (main1, sub1 …); left out, a cluster session gives every "
                            "kernel's, each line labelled `[NAME] `")),
          responses={200: "OK (JSON; with follow=1 text/plain, streamed)", 404: "No such session"}),
    Route("GET", f"{API}/sessions/{{ref}}/events", sessions.session_events,
          "Status changes and start-up progress as server-sent events",
          response_type="text/event-stream", response=api.StatusChange,
          responses={200: "Event stream. `event: status` (with `id:`): each status change, history first, until "
                          "the session ends. `event: progress` (no `id:`): news while it is SCHEDULED/PREPARING, "
                          "e.g. an image pull, or while RUNNING, the warning before an idle timeout; data {session_id, status, reason, at}; ephemeral, never in the "
                          "status history, and only from the manager the agent reported to",
                     404: "No such session"}),
    Route("GET", f"{API}/agents", cluster.list_agents, "Agents and their resources (admin)", tag="cluster",
          response=api.AgentList,
          responses={200: "OK", 403: "Not an admin"}),
    Route("GET", f"{API}/capacity", capacity.group_capacity,
          "What the alive agents of a resource group have free now, per node and per GPU (agent addresses for "
          "admins only)", tag="cluster", response=api.Capacity,
          query=(("group", "the resource group (left out: the caller's default group, else \"default\")"),),
          responses={200: "OK", 400: "Not a resource group name",
                     404: "No such resource group, or not one the caller may use"}),
    Route("GET", f"{API}/queue", queue.queue,
          "Pending sessions in the order the scheduler will consider them, per resource group: position, the "
          "queue policy's factors, why each waits, and the head of the queue's reservation", tag="cluster",
          response=api.QueueView,
          query=(("group", "only this resource group"),),
          responses={200: "OK", 400: "Not a resource group name",
                     404: "No such resource group, or not one the caller may use"}),
    Route("GET", f"{API}/usage", usage.usage,
          "Resource-hours per UTC day and per user or project (CPU-core-hours, GPU-hours with shares counted "
          "fractionally, memory-GiB-hours, sessions); users see their own and their projects', admins everyone's",
          tag="cluster", response=api.UsageReport,
          query=(("from", "first day, YYYY-MM-DD (default: 6 days before `to`)"),
                 ("to", "last day, YYYY-MM-DD, included (default: today, UTC)"),
                 ("by", "user (default) or project"), ("group", "only this resource group"),
                 ("user", "only this user (by=user)"), ("project", "only this project (by=project)"),
                 ("format", "json (default) or csv (a download with a header row)")),
          responses={200: "OK (application/json, or text/csv with format=csv)", 400: "A bad day, window or choice",
                     403: "Another user's usage, or a project you are not a member of",
                     404: "No such user or project"}),
    Route("GET", f"{API}/images", cluster.list_images, "Images available on agents", tag="cluster",
          response=api.ImageList),
    Route("POST", f"{API}/users", users.create_user,
          "Create a user with a keypair, and with `password` a web UI sign-in (admin)", tag="users",
          body=users.CreateUserRequest, response=api.NewUser,
          responses={201: "Created; the only time the secret key is shown",
                                                   400: "Invalid request (e.g. a password breaking the rules)",
                                                   403: "Not an admin", 409: "Username taken"}),
    Route("GET", f"{API}/storage-proxies/{{proxy}}/client/v1/{{tail}}", storage_relay.relay_client_api,
          "The web UI's path to a storage proxy's file API (any method, streamed; the proxy's own answers). "
          "Needs the web sign-in cookie (and X-CSRF-Token on writes) besides the vfolder token",
          signed=False, any_method=True, tag="vfolders",
          router_path=f"{API}/storage-proxies/{{proxy}}/client/v1/{{tail:.*}}",
          responses={200: "The storage proxy's answer (any status it gives)", 401: "Not signed in",
                     403: "Missing or wrong CSRF token", 404: "No such storage proxy",
                     503: "The storage proxy is unreachable"}),
    Route("GET", f"{API}/ssh-keys", ssh_keys.list_ssh_keys, "The caller's SSH public keys", tag="users",
          response=api.SshKeyList),
    Route("POST", f"{API}/ssh-keys", ssh_keys.add_ssh_key,
          "Register an SSH public key: every session of the caller accepts it (running ones at once)", tag="users",
          body=ssh_keys.AddSshKeyRequest, response=api.SshKey,
          responses={201: "Registered", 400: "Not an OpenSSH public key", 409: "Registered already"}),
    Route("DELETE", f"{API}/ssh-keys/{{ref}}", ssh_keys.remove_ssh_key,
          "Remove one of the caller's SSH keys (by id or fingerprint)", tag="users", response=api.SshKey,
          responses={200: "Removed", 404: "No such key"}),
    Route("GET", f"{API}/users", users.list_users, "List users (admin)", tag="users", response=api.UserList,
          responses={200: "OK", 403: "Not an admin"}),
    Route("PATCH", f"{API}/users/{{username}}", users.update_user,
          "Disable (is_active false: keypairs and web sessions stop working at once) or enable a user, or set "
          "their resource policy, default group and project, fair-share weight (admin)",
          tag="users", body=users.UpdateUserRequest, response=api.User,
          responses={200: "OK", 403: "Not an admin", 404: "No such user", 409: "Admins cannot disable themselves",
                     422: "No such resource policy, group or project, or not a member of that project"}),
    Route("PUT", f"{API}/users/{{username}}/password", users.set_password,
          "Set a user's web UI password (admins: anyone's; users: their own, with current_password); "
          "the user's other web sessions end", tag="users", body=users.SetPasswordRequest,
          responses={204: "Changed", 400: "Password too short/long or equal to the username, or "
                                          "current_password missing", 403: "Not an admin, or wrong current_password",
                     404: "No such user"}),
    *VFOLDER_ROUTES,
    *PROJECT_ROUTES,
    *SCHEDULING_ROUTES,
]


def _signed(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        request[USER_KEY] = await ctx_of(request).authenticator.authenticate(request)
        return await handler(request)

    return wrapper


def create_app(services: ApiServices) -> web.Application:
    app = web.Application(middlewares=[make_problem_middleware("manager")], client_max_size=2 << 20)
    app[SERVICES_KEY] = services
    for route in PUBLIC_ROUTES:
        app.router.add_route(
            "*" if route.any_method else route.method, route.router_path or route.path,
            _signed(route.handler) if route.signed else route.handler,
        )
    openapi = build_openapi(PUBLIC_ROUTES, VERSION)

    async def openapi_document(request: web.Request) -> web.Response:
        return web.json_response(openapi)

    app.router.add_get(f"{API}/openapi.json", openapi_document)
    app.router.add_post("/internal/v1/agents/heartbeat", internal.agent_heartbeat)
    app.router.add_post("/internal/v1/kernel-events", internal.kernel_events)
    add_storage_relay_routes(app)  # the web UI's path to the storage proxies' file API
    add_webui_routes(app)  # last: its catch-all GET must not shadow an API route
    return app
