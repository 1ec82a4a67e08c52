//! The simulator's listening socket and its connections, under the control of fault injection:
//! the socket can be closed and opened again on the same port (a service that is down, whose
//! port refuses connections), and a connection can be reset (closed without an answer, as a
//! crashing server or a proxy dropping it would).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use futures::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How long the accept loop waits before it tries to bind the port again, when another
/// socket took it meanwhile, or before it accepts again after a resource error.
const RETRY_BIND: Duration = Duration::from_millis(50);

/// What the handle and the accept loop share: whether the port should be open, whether it
/// is, and the open connections.
pub(crate) struct Switch {
    wanted: watch::Sender<bool>,
    listening: watch::Receiver<bool>,
    connections: Mutex<HashMap<u64, Arc<Control>>>,
    next_id: AtomicU64,
}

/// One connection's kill switch. A killed connection fails its next read or write, which
/// makes the server drop it, and is closed with a reset (see [`SimStream`]'s `Drop`).
#[derive(Default)]
struct Control {
    killed: AtomicBool,
    /// The task last polling the connection, woken by a kill: an idle keep-alive connection
    /// is only ever polled for reading.
    waker: AtomicWaker,
}

impl Control {
    fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        self.waker.wake();
    }

    /// Whether the connection was killed; registers the task to wake when it is.
    fn killed(&self, cx: &Context<'_>) -> bool {
        self.waker.register(cx.waker());
        self.killed.load(Ordering::SeqCst)
    }
}

/// The connection a request came in on, as the handlers see it (through a task-local set by
/// the router's middleware).
#[derive(Clone)]
pub(crate) struct Connection(Arc<Control>);

impl Connection {
    /// Closes the connection with a reset instead of the answer being prepared.
    pub(crate) fn reset(&self) {
        self.0.kill();
    }
}

impl Connected<IncomingStream<'_, SwitchListener>> for Connection {
    fn connect_info(stream: IncomingStream<'_, SwitchListener>) -> Self {
        Connection(stream.io().control.clone())
    }
}

tokio::task_local! {
    /// The connection of the request being handled.
    pub(crate) static CURRENT: Connection;
}

impl Switch {
    /// A switch for a listener that is bound: open, with no connection yet.
    pub(crate) fn open(listener: TcpListener, addr: SocketAddr) -> (Arc<Switch>, SwitchListener) {
        let (wanted, wanted_rx) = watch::channel(true);
        let (listening, listening_rx) = watch::channel(true);
        let switch = Arc::new(Switch {
            wanted,
            listening: listening_rx,
            connections: Mutex::default(),
            next_id: AtomicU64::new(0),
        });
        let listener = SwitchListener {
            addr,
            listener: Some(listener),
            wanted: wanted_rx,
            listening,
            switch: switch.clone(),
        };
        (switch, listener)
    }

    /// Closes the port and resets every open connection; returns once the port is closed
    /// (or the server has stopped). Connection attempts are refused from then on.
    pub(crate) async fn stop_listening(&self) {
        self.close();
        let _ = self.listening.clone().wait_for(|open| !*open).await;
        // Accepted while the accept loop was closing the port.
        self.reset_all();
    }

    /// Tells the accept loop to close the port, and resets every open connection, without
    /// waiting for the port to be closed.
    pub(crate) fn close(&self) {
        self.wanted.send_replace(false);
        self.reset_all();
    }

    /// Listens again on the same port; returns once it does (or the server has stopped).
    pub(crate) async fn start_listening(&self) {
        self.wanted.send_replace(true);
        let _ = self.listening.clone().wait_for(|open| *open).await;
    }

    fn reset_all(&self) {
        for control in self.connections().values() {
            control.kill();
        }
    }

    fn connections(&self) -> MutexGuard<'_, HashMap<u64, Arc<Control>>> {
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn register(self: &Arc<Self>, inner: TcpStream) -> SimStream {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let control = Arc::new(Control::default());
        self.connections().insert(id, control.clone());
        SimStream {
            inner,
            control,
            id,
            switch: self.clone(),
        }
    }
}

/// The listener `axum::serve` accepts from: a TCP listener that is dropped (closing the port)
/// while the switch says so, and bound again on the same address when it says to listen.
pub(crate) struct SwitchListener {
    addr: SocketAddr,
    listener: Option<TcpListener>,
    wanted: watch::Receiver<bool>,
    listening: watch::Sender<bool>,
    switch: Arc<Switch>,
}

impl axum::serve::Listener for SwitchListener {
    type Io = SimStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (SimStream, SocketAddr) {
        loop {
            if !*self.wanted.borrow_and_update() {
                if self.listener.take().is_some() {
                    self.listening.send_replace(false);
                    tracing::debug!(addr = %self.addr, "simulator stopped listening");
                }
                if self.wanted.changed().await.is_err() {
                    // The switch is gone with the simulator: nothing will open the port again.
                    std::future::pending::<()>().await;
                }
                continue;
            }
            let Some(listener) = &self.listener else {
                // The same port again. Binding sets SO_REUSEADDR, so the reset connections
                // do not hold it; another socket could have taken it meanwhile: try again.
                match TcpListener::bind(self.addr).await {
                    Ok(listener) => {
                        self.listener = Some(listener);
                        self.listening.send_replace(true);
                        tracing::debug!(addr = %self.addr, "simulator listening again");
                    }
                    Err(e) => {
                        tracing::warn!(addr = %self.addr, error = %e, "simulator cannot listen again yet");
                        tokio::time::sleep(RETRY_BIND).await;
                    }
                }
                continue;
            };
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => return (self.switch.register(stream), peer),
                    Err(e) if is_connection_error(&e) => {}
                    Err(e) => {
                        // Out of file descriptors and the like: wait rather than spin.
                        tracing::warn!(error = %e, "simulator accept failed");
                        tokio::time::sleep(RETRY_BIND).await;
                    }
                },
                changed = self.wanted.changed() => {
                    if changed.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.addr)
    }
}

/// Errors of one incoming connection, not of the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// An accepted connection that fails every read and write once killed, and is then closed
/// with a TCP reset rather than an orderly close.
pub(crate) struct SimStream {
    inner: TcpStream,
    control: Arc<Control>,
    id: u64,
    switch: Arc<Switch>,
}

fn reset_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        "connection reset by the simulator",
    )
}

impl AsyncRead for SimStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.control.killed(cx) {
            return Poll::Ready(Err(reset_error()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for SimStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.control.killed(cx) {
            return Poll::Ready(Err(reset_error()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.control.killed(cx) {
            return Poll::Ready(Err(reset_error()));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.control.killed(cx) {
            return Poll::Ready(Err(reset_error()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.control.killed(cx) {
            return Poll::Ready(Err(reset_error()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Drop for SimStream {
    fn drop(&mut self) {
        if self.control.killed.load(Ordering::SeqCst) {
            // SO_LINGER 0 makes the close send a reset. Tokio deprecates the call because a
            // non-zero linger blocks the thread on close; a zero one never does.
            #[allow(deprecated)]
            let _ = self.inner.set_linger(Some(Duration::ZERO));
        }
        self.switch.connections().remove(&self.id);
    }
}
