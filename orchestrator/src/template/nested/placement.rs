//! Where each resource of the flat template goes (its unit), and whether the children that
//! makes can be launched in some order.

use std::collections::{BTreeSet, HashMap};

use super::{Draft, Flat, NestError, Reference, Unit};

/// The unit of every resource: seeds where they are given, the others by their references.
pub(super) fn assign<'a>(
    f: &Flat<'a>,
    refs: &HashMap<&'a str, (Vec<Reference>, Vec<String>)>,
    units: &[Unit],
) -> Result<HashMap<&'a str, usize>, NestError> {
    let mut unit_of: HashMap<&str, usize> = HashMap::new();
    for (u, unit) in units.iter().enumerate() {
        for seed in &unit.seeds {
            let Some((id, _)) = f.resources.get_key_value(seed.as_str()) else {
                return Err(NestError::UnknownSeed {
                    unit: unit.logical_id.clone(),
                    seed: seed.clone(),
                });
            };
            unit_of.insert(id.as_str(), u);
        }
    }
    // What each resource depends on (other resources), and what depends on it.
    let mut targets: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    let mut sources: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for (id, (references, depends)) in refs {
        let named = references
            .iter()
            .filter_map(|r| match r {
                Reference::Ref(x) | Reference::Att(x, _) => Some(x.as_str()),
                _ => None,
            })
            .chain(depends.iter().map(String::as_str));
        for t in named {
            if let Some((t, _)) = f.resources.get_key_value(t) {
                targets.entry(id).or_default().insert(t.as_str());
                sources.entry(t.as_str()).or_default().insert(id);
            }
        }
    }
    loop {
        let mut changed = false;
        for id in f.resources.keys() {
            let id = id.as_str();
            if unit_of.contains_key(id) {
                continue;
            }
            let placed = match targets.get(id) {
                // After everything it depends on.
                Some(t) if t.iter().all(|t| unit_of.contains_key(t)) => {
                    t.iter().map(|t| unit_of[t]).max()
                }
                Some(_) => None,
                // Before everything that uses it.
                None => sources
                    .get(id)
                    .and_then(|s| s.iter().filter_map(|s| unit_of.get(s).copied()).min()),
            };
            if let Some(u) = placed {
                unit_of.insert(id, u);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    // Whatever nothing placed (unrelated to every unit) goes with the first.
    for id in f.resources.keys() {
        unit_of.entry(id.as_str()).or_insert(0);
    }
    Ok(unit_of)
}

/// Children ordered in a cycle cannot be launched (the units contradict the references).
pub(super) fn check_acyclic(
    units: &[Unit],
    children: &[Draft],
    takes: &[BTreeSet<usize>],
) -> Result<(), NestError> {
    let before: Vec<BTreeSet<usize>> = children
        .iter()
        .zip(takes)
        .map(|(c, t)| c.ordered_after.union(t).copied().collect())
        .collect();
    let mut pending: Vec<usize> = before.iter().map(BTreeSet::len).collect();
    let mut ready: Vec<usize> = (0..units.len()).filter(|&u| pending[u] == 0).collect();
    let mut done = 0;
    while let Some(v) = ready.pop() {
        done += 1;
        for (u, b) in before.iter().enumerate() {
            if b.contains(&v) {
                pending[u] -= 1;
                if pending[u] == 0 {
                    ready.push(u);
                }
            }
        }
    }
    if done == units.len() {
        return Ok(());
    }
    let stuck: Vec<&str> = (0..units.len())
        .filter(|&u| pending[u] > 0)
        .map(|u| units[u].logical_id.as_str())
        .collect();
    Err(NestError::Cycle(stuck.join(", ")))
}
