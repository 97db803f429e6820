//! Who may call the API, and how the function learns who did.
//!
//! In a deployed stack API Gateway authorizes every request before the function sees it: with a
//! JWT authorizer (the issuer and audience of an OIDC provider, Amazon Cognito included), with
//! IAM (SigV4), or not at all when the operator chose a public API. The template tells the
//! function which through `API_AUTHORIZATION` (`IAM`, `JWT` or `PUBLIC`); a local server and the
//! local Lambda emulator run without it ([`Access::Local`]).
//!
//! Only the gateway checks credentials: a JWT's signature, issuer, audience and expiry, or a
//! SigV4 signature. The function never parses a token. It reads what the gateway concluded from
//! the event's `requestContext.authorizer`, which a client cannot write (API Gateway builds the
//! request context; headers and body are the client's), and it checks again what the template
//! asks of each route ([`Access::admit`]), so that a route left without an authorizer by mistake
//! does not open the data. The admin switches need more than any caller: the admin scope on a
//! JWT, a SigV4 signature by an identity IAM lets invoke them, or the admin token where no
//! gateway authorizer holds the `Authorization` header ([`Credentials::authorize_admin`]).

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap};
use lambda_http::aws_lambda_events::apigw::ApiGatewayRequestAuthorizer;
use lambda_http::request::RequestContext;

use super::admin_policy::AdminPolicy;
use super::error::ApiError;

/// The variable through which the template tells the function how the gateway authorizes.
pub const MODE_VARIABLE: &str = "API_AUTHORIZATION";
/// The variable holding the scope a JWT needs for the admin switches.
pub const ADMIN_SCOPE_VARIABLE: &str = "JWT_ADMIN_SCOPE";

/// The one route a gateway with an authorizer leaves open in every mode: it shows no data, and
/// load balancers and uptime checks call it without credentials.
pub const HEALTH_PATH: &str = "/db/healthz";
/// The status page's shell: HTML and script with no data in them. Open under a JWT authorizer,
/// since a browser's navigation cannot carry a bearer token; its JSON requests carry one.
pub const SHELL_PATH: &str = "/";
/// The admin switches.
pub const ADMIN_PATHS: [&str; 2] = ["/db/force-sqlite", "/db/retry-redshift"];

/// How API Gateway authorizes requests in front of the function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// No gateway authorizer: the local server, the local Lambda emulator, or a function
    /// deployed without `API_AUTHORIZATION`. The admin token rules alone apply.
    Local,
    /// The operator chose a public API: the gateway lets everyone through. The admin token
    /// rules apply, and the status page shows no call data.
    Public,
    /// IAM: every route but the health check needs a SigV4 signature the gateway verified.
    Iam,
    /// A JWT authorizer on every route but the health check and the page's shell; the admin
    /// switches need `admin_scope` on the token.
    Jwt { admin_scope: Arc<str> },
    /// `API_AUTHORIZATION` holds what the function does not know, or JWT without an admin
    /// scope: everything but the health check is refused rather than guessed open.
    Misconfigured,
}

/// Why `API_AUTHORIZATION` (with `JWT_ADMIN_SCOPE`) could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccessError {
    #[error("{MODE_VARIABLE} must be IAM, JWT or PUBLIC, not {0:?}; every route but {HEALTH_PATH} is refused")]
    UnknownMode(String),
    #[error("{MODE_VARIABLE} is JWT but {ADMIN_SCOPE_VARIABLE} is empty; every route but {HEALTH_PATH} is refused")]
    MissingAdminScope,
}

impl Access {
    /// Reads the access mode from the process environment; a mistake is logged once and the
    /// API closes ([`Access::Misconfigured`]).
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok()).unwrap_or_else(|err| {
            tracing::error!("❌ {err}");
            Access::Misconfigured
        })
    }

    /// Reads the access mode from any source of variables; empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, AccessError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let Some(mode) = get(MODE_VARIABLE) else {
            return Ok(Access::Local);
        };
        match mode.to_ascii_uppercase().as_str() {
            "PUBLIC" => Ok(Access::Public),
            "IAM" => Ok(Access::Iam),
            "JWT" => get(ADMIN_SCOPE_VARIABLE)
                .map(|scope| Access::Jwt {
                    admin_scope: scope.into(),
                })
                .ok_or(AccessError::MissingAdminScope),
            _ => Err(AccessError::UnknownMode(mode)),
        }
    }

    /// The name the status page reads to decide what it shows.
    pub fn page_name(&self) -> &'static str {
        match self {
            Access::Local => "local",
            Access::Public => "public",
            Access::Iam => "iam",
            Access::Jwt { .. } => "jwt",
            Access::Misconfigured => "closed",
        }
    }

    /// Whether the gateway puts an authorizer on a route of this class (what the template
    /// declares, and what the template's test holds it to).
    pub fn gateway_authorizes(&self, class: RouteClass) -> bool {
        !matches!(
            (self, class),
            (Access::Local | Access::Public, _)
                | (_, RouteClass::Health)
                | (Access::Jwt { .. }, RouteClass::Shell)
        )
    }

    /// Checks again what the gateway demands of a request to a route of this class: a route
    /// with an authorizer must have reached the function with the authorizer's verdict.
    pub fn admit(&self, class: RouteClass, identity: &GatewayIdentity) -> Result<(), ApiError> {
        if !self.gateway_authorizes(class) {
            return Ok(());
        }
        match (self, identity) {
            (Access::Iam, GatewayIdentity::Iam { .. }) => Ok(()),
            (Access::Jwt { .. }, GatewayIdentity::Jwt { .. }) => Ok(()),
            (Access::Iam, _) => Err(ApiError::Unauthorized(SIGV4_NEEDED.into())),
            (Access::Jwt { .. }, _) => Err(ApiError::Unauthorized(JWT_NEEDED.into())),
            _ => Err(ApiError::Forbidden(MISCONFIGURED.into())),
        }
    }
}

const SIGV4_NEEDED: &str =
    "This API takes only requests signed with AWS credentials (SigV4) that may invoke it.";
const JWT_NEEDED: &str = "This API needs an Authorization: Bearer <access token> header.";
const MISCONFIGURED: &str =
    "This API is closed: its access mode is misconfigured (see the function's log).";

/// What the template asks of a route, told from its path alone: methods a route does not take
/// reach the function through the gateway's catch-all route, which has the authorizer of data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteClass {
    /// `GET /db/healthz`: no data, open in every mode.
    Health,
    /// `GET /`: the status page's shell, no data.
    Shell,
    /// The admin switches.
    Admin,
    /// Everything else: call data, status, the description, unknown paths.
    Data,
}

impl RouteClass {
    pub fn of(path: &str) -> Self {
        match path {
            HEALTH_PATH => RouteClass::Health,
            SHELL_PATH => RouteClass::Shell,
            _ if ADMIN_PATHS.contains(&path) => RouteClass::Admin,
            _ => RouteClass::Data,
        }
    }
}

/// What API Gateway concluded about the caller, from the event's `requestContext.authorizer`.
/// Nothing here is a credential: the gateway validated those and passes on only the result.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum GatewayIdentity {
    /// No authorizer ran: a local request, or a route without one.
    #[default]
    None,
    /// A JWT the gateway validated: its scopes (from the authorizer's `scopes`, else from the
    /// token's `scope` or `scp` claim) and its subject.
    Jwt {
        scopes: Vec<String>,
        subject: Option<String>,
    },
    /// A SigV4 signature the gateway verified, by this IAM identity.
    Iam { user_arn: Option<String> },
}

impl GatewayIdentity {
    /// The identity `lambda_http` keeps in the request's extensions; none for a local request.
    pub fn of(extensions: &Extensions) -> Self {
        match extensions.get::<RequestContext>() {
            Some(RequestContext::ApiGatewayV2(context)) => {
                Self::from_authorizer(context.authorizer.as_ref())
            }
            _ => GatewayIdentity::None,
        }
    }

    fn from_authorizer(authorizer: Option<&ApiGatewayRequestAuthorizer>) -> Self {
        let Some(authorizer) = authorizer else {
            return GatewayIdentity::None;
        };
        if let Some(jwt) = &authorizer.jwt {
            let scopes = match &jwt.scopes {
                Some(scopes) if !scopes.is_empty() => scopes.clone(),
                _ => ["scope", "scp"]
                    .iter()
                    .filter_map(|claim| jwt.claims.get(*claim))
                    .flat_map(|value| scope_list(value))
                    .collect(),
            };
            return GatewayIdentity::Jwt {
                scopes,
                subject: jwt.claims.get("sub").cloned(),
            };
        }
        match &authorizer.iam {
            Some(iam) => GatewayIdentity::Iam {
                user_arn: iam.user_arn.clone(),
            },
            None => GatewayIdentity::None,
        }
    }
}

/// The scopes in a `scope` claim (space-separated, as OAuth 2.0 writes it) or an `scp` claim
/// (a list, which API Gateway hands on as text such as `[a b]`).
fn scope_list(value: &str) -> Vec<String> {
    value
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(|c: char| c.is_whitespace() || c == ',')
        .map(|scope| scope.trim_matches('"'))
        .filter(|scope| !scope.is_empty())
        .map(str::to_string)
        .collect()
}

impl<S: Send + Sync> FromRequestParts<S> for Access {
    type Rejection = Infallible;

    /// The mode the router's gate put into the request; a request that did not pass the gate
    /// (a handler served outside [`super::router`]) is treated as closed.
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Access>()
            .cloned()
            .unwrap_or(Access::Misconfigured))
    }
}

/// What a request brings to the admin switches: the access mode, the gateway's verdict and the
/// request's headers (for the admin token where no gateway authorizer holds them).
pub struct Credentials {
    access: Access,
    identity: GatewayIdentity,
    headers: HeaderMap,
}

impl<S: Send + Sync> FromRequestParts<S> for Credentials {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let access = Access::from_request_parts(parts, state).await?;
        Ok(Credentials {
            access,
            identity: GatewayIdentity::of(&parts.extensions),
            headers: parts.headers.clone(),
        })
    }
}

impl Credentials {
    /// Who may use the admin switches, by mode:
    ///
    /// - JWT: a token the gateway validated that carries the admin scope (the gateway checks it
    ///   on the admin routes too); 401 without a verdict, 403 without the scope.
    /// - IAM: a signature the gateway verified (IAM decides who may invoke the admin routes);
    ///   401 without one.
    /// - Public, or no gateway authorizer: the admin token ([`AdminPolicy`]): with a token set,
    ///   `Authorization: Bearer <token>`; inside Lambda without one, refused; locally without
    ///   one, open.
    pub fn authorize_admin(&self, tokens: &AdminPolicy) -> Result<(), ApiError> {
        match (&self.access, &self.identity) {
            (Access::Local | Access::Public, _) => tokens.authorize(&self.headers),
            (Access::Iam, GatewayIdentity::Iam { .. }) => Ok(()),
            (Access::Iam, _) => Err(ApiError::Unauthorized(SIGV4_NEEDED.into())),
            (Access::Jwt { admin_scope }, GatewayIdentity::Jwt { scopes, .. }) => {
                if scopes.iter().any(|scope| **scope == **admin_scope) {
                    Ok(())
                } else {
                    Err(ApiError::Forbidden(format!(
                        "The access token lacks the admin scope {admin_scope}."
                    )))
                }
            }
            (Access::Jwt { .. }, _) => Err(ApiError::Unauthorized(JWT_NEEDED.into())),
            (Access::Misconfigured, _) => Err(ApiError::Forbidden(MISCONFIGURED.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::aws_lambda_events::apigw::{
        ApiGatewayRequestAuthorizerIamDescription, ApiGatewayRequestAuthorizerJwtDescription,
    };

    fn access(vars: &[(&str, &str)]) -> Result<Access, AccessError> {
        Access::from_lookup(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
    }

    fn jwt(admin_scope: &str) -> Access {
        Access::Jwt {
            admin_scope: admin_scope.into(),
        }
    }

    #[test]
    fn the_mode_comes_from_the_template_and_fails_closed() {
        assert_eq!(access(&[]), Ok(Access::Local));
        assert_eq!(access(&[(MODE_VARIABLE, " ")]), Ok(Access::Local));
        assert_eq!(access(&[(MODE_VARIABLE, "IAM")]), Ok(Access::Iam));
        assert_eq!(access(&[(MODE_VARIABLE, "public")]), Ok(Access::Public));
        assert_eq!(
            access(&[(MODE_VARIABLE, "JWT"), (ADMIN_SCOPE_VARIABLE, "crm/admin")]),
            Ok(jwt("crm/admin"))
        );
        assert_eq!(
            access(&[(MODE_VARIABLE, "JWT")]),
            Err(AccessError::MissingAdminScope)
        );
        assert_eq!(
            access(&[(MODE_VARIABLE, "COGNITO")]),
            Err(AccessError::UnknownMode("COGNITO".into()))
        );
    }

    #[test]
    fn routes_are_classed_by_path() {
        assert_eq!(RouteClass::of("/db/healthz"), RouteClass::Health);
        assert_eq!(RouteClass::of("/"), RouteClass::Shell);
        assert_eq!(RouteClass::of("/db/force-sqlite"), RouteClass::Admin);
        assert_eq!(RouteClass::of("/db/retry-redshift"), RouteClass::Admin);
        for data in [
            "/db/status",
            "/api/calls/history",
            "/openapi.json",
            "/db/healthz/",
        ] {
            assert_eq!(RouteClass::of(data), RouteClass::Data, "{data}");
        }
    }

    #[test]
    fn the_function_admits_what_the_gateway_would_have() {
        let signed = GatewayIdentity::Iam {
            user_arn: Some("arn:aws:iam::123456789012:user/ops".into()),
        };
        let token = GatewayIdentity::Jwt {
            scopes: vec![],
            subject: None,
        };
        let nobody = GatewayIdentity::None;
        let data = RouteClass::Data;
        assert!(Access::Iam.admit(data, &signed).is_ok());
        assert!(matches!(
            Access::Iam.admit(data, &token),
            Err(ApiError::Unauthorized(_))
        ));
        assert!(Access::Iam.admit(RouteClass::Health, &nobody).is_ok());
        assert!(Access::Iam.admit(RouteClass::Shell, &nobody).is_err());
        assert!(jwt("a").admit(data, &token).is_ok());
        assert!(jwt("a").admit(data, &signed).is_err());
        assert!(jwt("a").admit(RouteClass::Shell, &nobody).is_ok());
        assert!(Access::Public.admit(data, &nobody).is_ok());
        assert!(Access::Local.admit(RouteClass::Admin, &nobody).is_ok());
        assert!(matches!(
            Access::Misconfigured.admit(data, &signed),
            Err(ApiError::Forbidden(_))
        ));
        assert!(Access::Misconfigured
            .admit(RouteClass::Health, &nobody)
            .is_ok());
    }

    fn credentials(access: Access, identity: GatewayIdentity, bearer: Option<&str>) -> Credentials {
        let mut headers = HeaderMap::new();
        if let Some(token) = bearer {
            headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        Credentials {
            access,
            identity,
            headers,
        }
    }

    #[test]
    fn the_admin_policy_follows_the_mode() {
        let token_policy = AdminPolicy::new(Some("admin-token-0123456789".into()), true);
        let closed = AdminPolicy::new(None, true);
        let scoped = |scopes: &[&str]| GatewayIdentity::Jwt {
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            subject: Some("user-1".into()),
        };
        let admin = jwt("crm/admin");

        // JWT: the scope decides; the admin token is not a JWT and cannot stand in for one.
        let with_scope = credentials(admin.clone(), scoped(&["crm/read", "crm/admin"]), None);
        assert!(with_scope.authorize_admin(&closed).is_ok());
        let without = credentials(admin.clone(), scoped(&["crm/read"]), None);
        assert!(matches!(
            without.authorize_admin(&token_policy),
            Err(ApiError::Forbidden(_))
        ));
        let bearer_only = credentials(
            admin.clone(),
            GatewayIdentity::None,
            Some("admin-token-0123456789"),
        );
        assert!(matches!(
            bearer_only.authorize_admin(&token_policy),
            Err(ApiError::Unauthorized(_))
        ));

        // IAM: the gateway's verified signature decides.
        let signed = GatewayIdentity::Iam { user_arn: None };
        assert!(credentials(Access::Iam, signed, None)
            .authorize_admin(&closed)
            .is_ok());
        assert!(matches!(
            credentials(
                Access::Iam,
                GatewayIdentity::None,
                Some("admin-token-0123456789")
            )
            .authorize_admin(&token_policy),
            Err(ApiError::Unauthorized(_))
        ));

        // Public and local: the admin token, as before.
        for mode in [Access::Public, Access::Local] {
            let right = credentials(
                mode.clone(),
                GatewayIdentity::None,
                Some("admin-token-0123456789"),
            );
            assert!(right.authorize_admin(&token_policy).is_ok());
            let wrong = credentials(mode.clone(), GatewayIdentity::None, Some("guess"));
            assert!(matches!(
                wrong.authorize_admin(&token_policy),
                Err(ApiError::Forbidden(_))
            ));
            let none = credentials(mode, GatewayIdentity::None, None);
            assert!(matches!(
                none.authorize_admin(&token_policy),
                Err(ApiError::Unauthorized(_))
            ));
        }
        let local_open = credentials(Access::Local, GatewayIdentity::None, None);
        assert!(local_open
            .authorize_admin(&AdminPolicy::new(None, false))
            .is_ok());
        let lambda_closed = credentials(Access::Public, GatewayIdentity::None, None);
        assert!(lambda_closed.authorize_admin(&closed).is_err());
    }

    fn authorizer_with_jwt(
        claims: &[(&str, &str)],
        scopes: Option<&[&str]>,
    ) -> ApiGatewayRequestAuthorizer {
        let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
        jwt.claims = claims
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        jwt.scopes = scopes.map(|s| s.iter().map(|x| x.to_string()).collect());
        let mut authorizer = ApiGatewayRequestAuthorizer::default();
        authorizer.jwt = Some(jwt);
        authorizer
    }

    #[test]
    fn scopes_come_from_the_authorizer_or_the_token_claims() {
        let listed = authorizer_with_jwt(&[("sub", "u1")], Some(&["crm/admin"]));
        assert_eq!(
            GatewayIdentity::from_authorizer(Some(&listed)),
            GatewayIdentity::Jwt {
                scopes: vec!["crm/admin".into()],
                subject: Some("u1".into())
            }
        );
        let oauth = authorizer_with_jwt(&[("scope", "openid crm/admin")], None);
        let okta = authorizer_with_jwt(&[("scp", "[crm/read crm/admin]")], Some(&[]));
        for authorizer in [oauth, okta] {
            let GatewayIdentity::Jwt { scopes, .. } =
                GatewayIdentity::from_authorizer(Some(&authorizer))
            else {
                panic!("a JWT identity");
            };
            assert!(scopes.contains(&"crm/admin".to_string()), "{scopes:?}");
        }
        let mut iam = ApiGatewayRequestAuthorizer::default();
        let mut description = ApiGatewayRequestAuthorizerIamDescription::default();
        description.user_arn = Some("arn:aws:iam::123456789012:role/ops".into());
        iam.iam = Some(description);
        assert!(matches!(
            GatewayIdentity::from_authorizer(Some(&iam)),
            GatewayIdentity::Iam { user_arn: Some(_) }
        ));
        assert_eq!(
            GatewayIdentity::from_authorizer(None),
            GatewayIdentity::None
        );
    }
}
