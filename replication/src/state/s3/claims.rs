//! What the state claims with leases: the application lock, and each server while one host
//! replicates it.

use super::*;

pub(super) async fn lock_app(
    store: &S3Store,
    app: &str,
) -> Result<Box<dyn AppLockGuard>, StateError> {
    let rel = layout::lock(app);
    let ttl = store.inner.opts.lease_ttl;
    match lease::claim(store.objects(), &rel, &lease::this_holder(), ttl).await? {
        lease::Claim::Won {
            etag,
            body,
            took_over,
        } => {
            if let Some(old) = took_over {
                tracing::warn!(
                    "took over the lock of application {app}: its holder ({}) stopped renewing it",
                    old.describe()
                );
            }
            Ok(Box::new(lease::HeldLease::start(
                store.objects().clone(),
                rel,
                app.to_string(),
                body,
                etag,
                ttl,
            )))
        }
        lease::Claim::Held(body) => Err(StateError::Locked {
            app: app.to_string(),
            holder: body.describe(),
            location: format!("lease {}", store.objects().url(&rel)),
        }),
    }
}

/// Claims a server's lease (`apps/<app>/leases/<server>.json`) for `holder`.
pub(super) async fn claim_server(
    store: &S3Store,
    server: &ServerKey,
    holder: &str,
) -> Result<ServerClaim, StateError> {
    let rel = layout::lease(server);
    let ttl = store.inner.opts.lease_ttl;
    Ok(
        match lease::claim(store.objects(), &rel, holder, ttl).await? {
            lease::Claim::Won {
                etag,
                body,
                took_over,
            } => ServerClaim::Won {
                guard: Box::new(lease::HeldLease::start(
                    store.objects().clone(),
                    rel,
                    server.app.clone(),
                    body,
                    etag,
                    ttl,
                )),
                took_over: took_over.map(|old| old.holder()),
            },
            lease::Claim::Held(body) => ServerClaim::Held(body.holder()),
        },
    )
}
