//! A TCP proxy for failure tests: what a half-open connection (a network
//! cut with no FIN) or a reset connection does to a client, against the
//! real server behind it.

/// A TCP proxy that can freeze its open connections: bytes stop flowing but
/// the sockets stay open, as with a network cut that sends no FIN. The
/// server keeps the session (and whatever it holds). Connections opened
/// after a freeze flow normally.
pub struct FreezingProxy {
    /// `127.0.0.1:<port>`: connect here instead of the upstream.
    pub addr: String,
    freeze: std::sync::Arc<std::sync::Mutex<tokio_util::sync::CancellationToken>>,
    cut: std::sync::Arc<std::sync::Mutex<tokio_util::sync::CancellationToken>>,
    stop: tokio_util::sync::CancellationToken,
}

impl FreezingProxy {
    /// Starts proxying to `upstream` (`host:port`) on a free local port.
    ///
    /// # Errors
    /// When no local port can be bound.
    pub async fn start(upstream: &str) -> std::io::Result<Self> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let freeze = std::sync::Arc::new(std::sync::Mutex::new(
            tokio_util::sync::CancellationToken::new(),
        ));
        let cut = std::sync::Arc::new(std::sync::Mutex::new(
            tokio_util::sync::CancellationToken::new(),
        ));
        let stop = tokio_util::sync::CancellationToken::new();
        let upstream = upstream.to_owned();
        let (freeze_in, cut_in, stop_in) = (freeze.clone(), cut.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = stop_in.cancelled() => return,
                    a = listener.accept() => a,
                };
                let Ok((client, _)) = accepted else { return };
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    continue;
                };
                let frozen = freeze_in.lock().map(|t| t.clone()).unwrap_or_default();
                let severed = cut_in.lock().map(|t| t.clone()).unwrap_or_default();
                let stop = stop_in.clone();
                tokio::spawn(async move {
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let (mut up, mut down) = ([0u8; 8192], [0u8; 8192]);
                    loop {
                        tokio::select! {
                            () = stop.cancelled() => return,
                            // Cut: both sockets are dropped (closed) now.
                            () = severed.cancelled() => return,
                            () = frozen.cancelled() => break,
                            n = cr.read(&mut up) => match n {
                                Ok(0) | Err(_) => return,
                                Ok(n) => if sw.write_all(&up[..n]).await.is_err() { return },
                            },
                            n = sr.read(&mut down) => match n {
                                Ok(0) | Err(_) => return,
                                Ok(n) => if cw.write_all(&down[..n]).await.is_err() { return },
                            },
                        }
                    }
                    // Frozen: keep every socket open, move no byte, until the test ends.
                    stop.cancelled().await;
                    drop((cr, cw, sr, sw));
                });
            }
        });
        Ok(Self {
            addr: format!("127.0.0.1:{port}"),
            freeze,
            cut,
            stop,
        })
    }

    /// Closes every connection open now, on both sides, as a broker restart
    /// or a load balancer reset would; later ones are unaffected.
    pub fn cut(&self) {
        if let Ok(mut current) = self.cut.lock() {
            current.cancel();
            *current = tokio_util::sync::CancellationToken::new();
        }
    }

    /// Freezes every connection open now; later ones are unaffected.
    pub fn freeze(&self) {
        if let Ok(mut current) = self.freeze.lock() {
            current.cancel();
            *current = tokio_util::sync::CancellationToken::new();
        }
    }
}

impl Drop for FreezingProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
