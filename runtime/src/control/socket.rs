//! The socket file: binding it safely, removing it at the end.

use std::fs::{self, Permissions};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::{UnixListener, UnixStream};

/// Binds `path`, replacing a stale socket, and makes it mode 0600.
pub(super) async fn bind(path: &Path) -> io::Result<(UnixListener, SocketFile)> {
    match fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        Ok(_) => match UnixStream::connect(path).await {
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "a gateway is already answering on {}; two gateways must not share a spool",
                        path.display()
                    ),
                ));
            }
            // Nobody listens: a gateway that ended without cleaning up.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                tracing::info!(socket = %path.display(), "removing a stale control socket");
                remove(path)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    // Set at once; the peer credential check covers the moment between.
    fs::set_permissions(path, Permissions::from_mode(0o600))?;
    let meta = fs::symlink_metadata(path)?;
    let file = SocketFile {
        path: path.to_owned(),
        identity: (meta.dev(), meta.ino()),
    };
    Ok((listener, file))
}

fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The bound socket's file, removed on drop if it is still ours.
pub(super) struct SocketFile {
    /// Where it is.
    path: PathBuf,
    /// Device and inode at bind: a file put in its place since is left
    /// alone.
    identity: (u64, u64),
}

impl SocketFile {
    /// Where the socket is.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let ours =
            fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.identity);
        if ours {
            if let Err(e) = remove(&self.path) {
                tracing::warn!(socket = %self.path.display(), error = %e, "cannot remove the control socket");
            }
        }
    }
}
