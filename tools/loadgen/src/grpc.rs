//! The gRPC side: a tonic channel to a service, the mesh key calls are
//! signed with (`mesh`), and one worker's connection (`GrpcConn`), either
//! a bare HTTP/2 connection with hand-made unary calls (`h2_unary`) or
//! tonic clients.

use proto::relation::v1::relation_service_client::RelationServiceClient;
use proto::relation::v1::{ListRequest, ListResponse};
use proto::user::v1::user_service_client::UserServiceClient;
use proto::user::v1::{GetUserRequest, GetUserResponse};
use service_kit::mesh_auth::{MeshAuth, MeshChannel};
use tokio::net::TcpStream;

use crate::GrpcClient;

pub(crate) async fn grpc_channel(url: &str) -> anyhow::Result<tonic::transport::Channel> {
    Ok(tonic::transport::Endpoint::from_shared(url.to_owned())?
        .tcp_nodelay(true)
        .connect()
        .await?)
}

/// One worker's gRPC connection, bare HTTP/2 or tonic.
pub(crate) enum GrpcConn {
    H2 {
        send: h2::client::SendRequest<bytes::Bytes>,
        /// The two methods' URIs on this connection's service, parsed once.
        get_user: http::Uri,
        following_list: http::Uri,
    },
    Tonic(Box<TonicClients>),
}

/// A tonic channel's two clients (boxed: much larger than the h2 handle).
pub(crate) struct TonicClients {
    users: UserServiceClient<MeshChannel>,
    relations: RelationServiceClient<MeshChannel>,
}

/// The mesh key gRPC calls are signed with: `SLUICE_MESH_SECRET`, else
/// the dev mesh's key (the services answer only members: see
/// `service_kit::mesh_auth`). Read once: the bare HTTP/2 client signs every
/// call with it.
pub(crate) fn mesh() -> &'static MeshAuth {
    static MESH: std::sync::LazyLock<MeshAuth> =
        std::sync::LazyLock::new(|| match std::env::var("SLUICE_MESH_SECRET") {
            Ok(s) if !s.is_empty() => MeshAuth::new(s.into()),
            _ => MeshAuth::dev(),
        });
    &MESH
}

impl GrpcConn {
    pub(crate) async fn connect(kind: GrpcClient, url: &str) -> anyhow::Result<Self> {
        Ok(match kind {
            GrpcClient::Tonic => {
                let channel = grpc_channel(url).await?;
                let mesh = mesh();
                GrpcConn::Tonic(Box::new(TonicClients {
                    users: UserServiceClient::with_interceptor(channel.clone(), mesh.client()),
                    relations: RelationServiceClient::with_interceptor(channel, mesh.client()),
                }))
            }
            GrpcClient::H2 => {
                let uri: http::Uri = url.parse()?;
                let authority = uri
                    .authority()
                    .ok_or_else(|| anyhow::anyhow!("{url}: no host:port"))?
                    .to_string();
                let tcp = TcpStream::connect(&authority).await?;
                tcp.set_nodelay(true)?;
                let (send, conn) = h2::client::handshake(tcp).await?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                let uri = |path: &str| format!("http://{authority}{path}").parse::<http::Uri>();
                GrpcConn::H2 {
                    send,
                    get_user: uri("/user.v1.UserService/GetUser")?,
                    following_list: uri("/relation.v1.RelationService/FollowingList")?,
                }
            }
        })
    }

    /// GetUser; true when the service answered OK with the user.
    pub(crate) async fn get_user(&mut self, id: u64) -> bool {
        let req = GetUserRequest {
            user_id: id,
            viewer_id: 0,
        };
        match self {
            GrpcConn::Tonic(t) => t.users.get_user(req).await.is_ok(),
            GrpcConn::H2 { send, get_user, .. } => {
                h2_unary::<_, GetUserResponse>(send, get_user, &req)
                    .await
                    .is_ok_and(|r| r.user.is_some_and(|u| u.id == id))
            }
        }
    }

    /// FollowingList, first page of 20; true when answered OK.
    pub(crate) async fn following_list(&mut self, id: u64) -> bool {
        let req = ListRequest {
            user_id: id,
            cursor: String::new(),
            limit: 20,
        };
        match self {
            GrpcConn::Tonic(t) => t.relations.following_list(req).await.is_ok(),
            GrpcConn::H2 {
                send,
                following_list,
                ..
            } => h2_unary::<_, ListResponse>(send, following_list, &req)
                .await
                .is_ok(),
        }
    }
}

/// One unary gRPC call on a bare HTTP/2 connection: a length-prefixed
/// message out, `grpc-status` 0 and one message back.
async fn h2_unary<Req: prost::Message, Resp: prost::Message + Default>(
    send: &h2::client::SendRequest<bytes::Bytes>,
    uri: &http::Uri,
    msg: &Req,
) -> anyhow::Result<Resp> {
    let len = msg.encoded_len();
    let mut frame = Vec::with_capacity(5 + len);
    frame.push(0);
    frame.extend_from_slice(&u32::try_from(len)?.to_be_bytes());
    msg.encode(&mut frame)?;
    let mut signed = tonic::Request::new(());
    mesh().sign(&mut signed, None);
    let mut req = http::Request::post(uri.clone())
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())?;
    req.headers_mut()
        .extend(signed.metadata().clone().into_headers());
    let mut ready = send.clone().ready().await?;
    let (resp, mut out) = ready.send_request(req, false)?;
    out.send_data(bytes::Bytes::from(frame), true)?;
    let resp = resp.await?;
    anyhow::ensure!(resp.status() == 200, "HTTP status {}", resp.status());
    // A failure may come "trailers-only", in the headers.
    let early = resp.headers().get("grpc-status").cloned();
    let mut body = resp.into_body();
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await?;
    let status = early.or_else(|| trailers.and_then(|t| t.get("grpc-status").cloned()));
    anyhow::ensure!(
        status.as_ref().is_some_and(|s| s == "0"),
        "grpc-status {status:?}"
    );
    anyhow::ensure!(data.len() >= 5 && data[0] == 0, "no uncompressed message");
    Ok(Resp::decode(&data[5..])?)
}
