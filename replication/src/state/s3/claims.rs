//! What the state claims with leases: the application lock.

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
