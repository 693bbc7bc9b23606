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
use crate::status::Status;

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

    /// GetUser: `OK` when the service answered with the user (the bare
    /// HTTP/2 client also checks it is the one asked for: else
    /// `bad-response`).
    pub(crate) async fn get_user(&mut self, id: u64) -> Status {
        let req = GetUserRequest {
            user_id: id,
            viewer_id: 0,
        };
        match self {
            GrpcConn::Tonic(t) => tonic_status(t.users.get_user(req).await),
            GrpcConn::H2 { send, get_user, .. } => {
                match h2_unary::<_, GetUserResponse>(send, get_user, &req).await {
                    Ok(r) if r.user.as_ref().is_some_and(|u| u.id == id) => Status::GRPC_OK,
                    Ok(_) => Status::BAD_RESPONSE,
                    Err(status) => status,
                }
            }
        }
    }

    /// FollowingList, first page of 20: `OK` when answered.
    pub(crate) async fn following_list(&mut self, id: u64) -> Status {
        let req = ListRequest {
            user_id: id,
            cursor: String::new(),
            limit: 20,
        };
        match self {
            GrpcConn::Tonic(t) => tonic_status(t.relations.following_list(req).await),
            GrpcConn::H2 {
                send,
                following_list,
                ..
            } => match h2_unary::<_, ListResponse>(send, following_list, &req).await {
                Ok(_) => Status::GRPC_OK,
                Err(status) => status,
            },
        }
    }
}

/// A tonic call's status (tonic reports transport failures as gRPC codes,
/// mostly `UNAVAILABLE`).
fn tonic_status<T>(r: Result<T, tonic::Status>) -> Status {
    match r {
        Ok(_) => Status::GRPC_OK,
        Err(e) => Status::Grpc(e.code()),
    }
}

/// One unary gRPC call on a bare HTTP/2 connection: a length-prefixed
/// message out, `grpc-status` 0 and one message back. A failure is the
/// status the call ended with: the gRPC code, the HTTP status when not 200,
/// or the transport failure (see [`Status::h2`]).
async fn h2_unary<Req: prost::Message, Resp: prost::Message + Default>(
    send: &h2::client::SendRequest<bytes::Bytes>,
    uri: &http::Uri,
    msg: &Req,
) -> Result<Resp, Status> {
    // Building the request cannot fail in practice (small messages, static
    // headers); if it did, the call counts as `encode`.
    fn encode<E>(_: E) -> Status {
        Status::Transport("encode")
    }
    let len = msg.encoded_len();
    let mut frame = Vec::with_capacity(5 + len);
    frame.push(0);
    frame.extend_from_slice(&u32::try_from(len).map_err(encode)?.to_be_bytes());
    msg.encode(&mut frame).map_err(encode)?;
    let mut signed = tonic::Request::new(());
    mesh().sign(&mut signed, None);
    let mut req = http::Request::post(uri.clone())
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .map_err(encode)?;
    req.headers_mut()
        .extend(signed.metadata().clone().into_headers());
    let h2 = |e: h2::Error| Status::h2(&e);
    let mut ready = send.clone().ready().await.map_err(h2)?;
    let (resp, mut out) = ready.send_request(req, false).map_err(h2)?;
    out.send_data(bytes::Bytes::from(frame), true).map_err(h2)?;
    let resp = resp.await.map_err(h2)?;
    if resp.status() != http::StatusCode::OK {
        return Err(Status::Http(resp.status().as_u16()));
    }
    // A failure may come "trailers-only", in the headers.
    let early = resp.headers().get("grpc-status").cloned();
    let mut body = resp.into_body();
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(h2)?;
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.map_err(h2)?;
    let status = early
        .or_else(|| trailers.and_then(|t| t.get("grpc-status").cloned()))
        .ok_or(Status::BAD_RESPONSE)?;
    let code = tonic::Code::from_bytes(status.as_bytes());
    if code != tonic::Code::Ok {
        return Err(Status::Grpc(code));
    }
    if data.len() < 5 || data[0] != 0 {
        return Err(Status::BAD_RESPONSE);
    }
    Resp::decode(&data[5..]).map_err(|_| Status::BAD_RESPONSE)
}
