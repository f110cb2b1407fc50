//! The HTTP server the pull jobs download from, on 127.0.0.1: nginx from Debian's packages when
//! it is installed (and not refused with `--builtin-server`), else the test kit's server
//! ([`testkit::server`]) with no fault, serving the directory's files with sendfile. Either one
//! counts the bodies it served per path, so the concurrent-pull job can show that eight pulls
//! cost one download.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context, Result};
use testkit::server::Fault;

/// A running server over one directory.
pub struct Server {
    pub port: u16,
    /// What serves: "nginx 1.22.1" or "built-in static server".
    pub what: String,
    kind: Kind,
}

enum Kind {
    Nginx {
        child: Child,
        log: PathBuf,
        prefix: PathBuf,
        conf: PathBuf,
    },
    Builtin(testkit::server::Server),
}

impl Server {
    /// Serves `root` (read-only) on a free loopback port; `scratch` holds nginx's config and logs.
    pub fn start(root: &Path, scratch: &Path, builtin: bool) -> Result<Server> {
        if !builtin {
            if let Some(version) = nginx_version() {
                return start_nginx(root, scratch, version);
            }
        }
        start_builtin(root)
    }

    /// The URL of `file` (a name inside the served directory).
    pub fn url(&self, file: &str) -> String {
        format!("http://127.0.0.1:{}/{file}", self.port)
    }

    /// How many responses carried a body (200 or 206 to a GET) for `/file` so far.
    pub fn bodies(&self, file: &str) -> Result<usize> {
        let want = format!("/{file}");
        match &self.kind {
            Kind::Nginx { log, .. } => {
                let text = beaker::fsx::user::read_to_string(log).unwrap_or_default();
                Ok(text
                    .lines()
                    .filter(|l| {
                        let mut f = l.split(' ');
                        f.next() == Some("GET")
                            && f.next() == Some(want.as_str())
                            && matches!(f.next(), Some("200") | Some("206"))
                    })
                    .count())
            }
            Kind::Builtin(server) => Ok(server.bodies(&want)),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        match &mut self.kind {
            Kind::Nginx {
                child,
                prefix,
                conf,
                ..
            } => {
                // `-s stop` has the master stop its workers too; killing the master alone
                // would leave them running, orphaned.
                let stopped = Command::new("nginx")
                    .arg("-p")
                    .arg(&*prefix)
                    .arg("-c")
                    .arg(&*conf)
                    .args(["-s", "stop"])
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                if !stopped {
                    let _ = child.kill();
                }
                let _ = child.wait();
            }
            // The kit's server stops when it is dropped.
            Kind::Builtin(_) => {}
        }
    }
}

fn nginx_version() -> Option<String> {
    let out = Command::new("nginx").arg("-v").output().ok()?;
    let text = String::from_utf8_lossy(&out.stderr);
    let v = text.trim().strip_prefix("nginx version: ")?;
    Some(v.replace('/', " "))
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind(("127.0.0.1", 0)).context("bind a loopback port")?;
    Ok(l.local_addr()?.port())
}

fn start_nginx(root: &Path, scratch: &Path, version: String) -> Result<Server> {
    let prefix = scratch.join("nginx");
    beaker::fsx::user::create_dir_all(&prefix)?;
    let port = free_port()?;
    let log = prefix.join("access.log");
    let p = prefix.display();
    // As root nginx's workers would switch to `nobody`, who cannot enter a private temp dir.
    let user = if beaker::who::euid() == 0 {
        "user root;"
    } else {
        ""
    };
    let conf = format!(
        "{user}\nworker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/error.log;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  log_format bench '$request_method $uri $status $body_bytes_sent';\n\
           access_log {log};\n  sendfile on;\n  tcp_nopush on;\n  default_type application/octet-stream;\n\
           client_body_temp_path {p}/body; proxy_temp_path {p}/proxy; fastcgi_temp_path {p}/fastcgi;\n\
           uwsgi_temp_path {p}/uwsgi; scgi_temp_path {p}/scgi;\n\
           server {{ listen 127.0.0.1:{port}; root {root}; location / {{ }} }}\n}}\n",
        log = format_args!("{} bench", log.display()),
        root = root.display(),
    );
    let conf_path = prefix.join("nginx.conf");
    beaker::fsx::user::write_file(&conf_path, conf.as_bytes())?;
    let child = Command::new("nginx")
        .arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(&conf_path)
        .args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start nginx")?;
    let mut server = Server {
        port,
        what: version,
        kind: Kind::Nginx {
            child,
            log,
            prefix: prefix.clone(),
            conf: conf_path,
        },
    };
    wait_until_up(&mut server, &prefix)?;
    Ok(server)
}

/// Polls the port until nginx answers (its start-up has no other signal), for up to 10 s.
fn wait_until_up(server: &mut Server, prefix: &Path) -> Result<()> {
    for _ in 0..1000 {
        if TcpStream::connect(("127.0.0.1", server.port)).is_ok() {
            return Ok(());
        }
        if let Kind::Nginx { child, .. } = &mut server.kind {
            if let Ok(Some(status)) = child.try_wait() {
                let log = beaker::fsx::user::read_to_string(&prefix.join("error.log"))
                    .unwrap_or_default();
                bail!("nginx exited ({status}): {log}");
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    bail!("nginx did not listen on port {} within 10 s", server.port)
}

/// The kit's server, every file of `root` at `/NAME`, with no fault.
fn start_builtin(root: &Path) -> Result<Server> {
    let server = testkit::server::Server::start()?;
    for path in beaker::fsx::user::read_dir(root)? {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("a file name that is not UTF-8: {}", path.display()))?;
        server.route_file(&format!("/{name}"), &path, &[], Fault::None);
    }
    Ok(Server {
        port: server.port,
        what: "built-in static server (nginx not installed)".into(),
        kind: Kind::Builtin(server),
    })
}
