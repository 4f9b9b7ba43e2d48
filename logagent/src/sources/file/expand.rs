//! Expands a collect path's glob into the files it names, with bounds: a directory tree is
//! something others write to, and three `ln -s . lN` under a `**` glob make an unbounded
//! walk exponential (the `glob` crate follows them until the path is too long).
//!
//! * Each directory is entered once, by `(dev, inode)`: a symlink loop, or two links to
//!   one directory, cannot make a file appear twice or the walk go round.
//! * Real directories are walked before symlinked ones, so a file reachable both ways is
//!   found under its real path.
//! * Depth below the glob's literal prefix, entries looked at, and time are bounded; when a
//!   bound cuts the walk, what was found so far is returned along with why it was cut.
//!
//! It does blocking file-system calls, so it runs on a blocking thread, never on the
//! threads that read and ship lines (see [`super::FileSource`]).

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use globset::GlobBuilder;

/// Limits of one expansion.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Directory levels below the glob's literal prefix, for `**`.
    pub max_depth: usize,
    /// Directory entries looked at.
    pub max_entries: usize,
    /// Wall time.
    pub max_time: Duration,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            max_depth: 16,
            max_entries: 100_000,
            max_time: Duration::from_secs(5),
        }
    }
}

/// What an expansion found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Expansion {
    /// Matching paths that are not directories, sorted. Whether they may be read is for
    /// [`super::open::open_collected`] to say.
    pub paths: Vec<PathBuf>,
    /// Why the walk stopped early, if it did.
    pub cut: Option<String>,
}

fn is_wild(s: &str) -> bool {
    s.contains(['*', '?', '[', ']', '{', '}'])
}

/// Expands `pattern` (`*` within one directory, `**` across directories, as in
/// `allowed_paths`). An invalid pattern is an error.
pub fn expand(pattern: &str, bounds: Bounds) -> Result<Expansion, String> {
    let full = Path::new(pattern);
    let parts: Vec<Component<'_>> = full.components().collect();
    let Some(first_wild) = parts
        .iter()
        .position(|c| is_wild(&c.as_os_str().to_string_lossy()))
    else {
        // No wildcard: the path itself, if something that is not a directory is there.
        let found = std::fs::metadata(full).is_ok_and(|m| !m.is_dir());
        return Ok(Expansion {
            paths: if found {
                vec![full.to_path_buf()]
            } else {
                vec![]
            },
            cut: None,
        });
    };
    let matcher = GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|e| e.to_string())?
        .compile_matcher();
    let base: PathBuf = parts[..first_wild].iter().collect();
    let rest = &parts[first_wild..];
    // Without `**` the pattern's own length bounds the depth.
    let double_star = rest.iter().any(|c| c.as_os_str() == "**");
    let max_depth = if double_star {
        bounds.max_depth
    } else {
        rest.len().saturating_sub(1)
    };
    let started = Instant::now();
    let mut out = Expansion::default();
    let mut seen_dirs: HashSet<(u64, u64)> = HashSet::new();
    let Ok(meta) = std::fs::metadata(&base) else {
        return Ok(out);
    };
    seen_dirs.insert((meta.dev(), meta.ino()));
    let mut real: Vec<(PathBuf, usize)> = vec![(base, 0)];
    // Entered only once no real directory is left, and only if not entered by then: a
    // file reachable both ways is found under its real path.
    let mut linked: Vec<(PathBuf, usize, (u64, u64))> = Vec::new();
    let mut entries = 0usize;
    'walk: loop {
        let (dir, depth) = match real.pop() {
            Some(next) => next,
            None => match linked.pop() {
                Some((dir, depth, id)) if seen_dirs.insert(id) => (dir, depth),
                Some(_) => continue,
                None => break,
            },
        };
        let Ok(listing) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut names: Vec<_> = listing.filter_map(Result::ok).collect();
        names.sort_by_key(|e| e.file_name());
        for e in names {
            entries += 1;
            if entries > bounds.max_entries {
                out.cut = Some(format!(
                    "looked at {} directory entries",
                    bounds.max_entries
                ));
                break 'walk;
            }
            if started.elapsed() > bounds.max_time {
                out.cut = Some(format!("took longer than {:?}", bounds.max_time));
                break 'walk;
            }
            let path = e.path();
            let Ok(kind) = e.file_type() else { continue };
            // A symlink is looked through (stat, never open) to know whether it is a
            // directory to enter.
            let meta = if kind.is_symlink() {
                std::fs::metadata(&path).ok()
            } else {
                None
            };
            let is_dir = meta.as_ref().map_or(kind.is_dir(), |m| m.is_dir());
            if !is_dir {
                if matcher.is_match(&path) {
                    out.paths.push(path);
                }
                continue;
            }
            if depth >= max_depth {
                if double_star && out.cut.is_none() {
                    out.cut = Some(format!(
                        "directories deeper than {} levels were not entered",
                        bounds.max_depth
                    ));
                }
                continue;
            }
            match meta {
                Some(m) => linked.push((path, depth + 1, (m.dev(), m.ino()))),
                None => {
                    let Ok(m) = e.metadata() else { continue };
                    if seen_dirs.insert((m.dev(), m.ino())) {
                        real.push((path, depth + 1));
                    }
                }
            }
        }
    }
    out.paths.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlink_loops_are_entered_once_and_files_found_under_their_real_path() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        std::fs::write(d.join("a/x.log"), "").unwrap();
        std::fs::write(d.join("a/b/y.log"), "").unwrap();
        std::fs::write(d.join("a/b/y.txt"), "").unwrap();
        for l in ["l1", "l2", "l3"] {
            symlink(".", d.join("a").join(l)).unwrap();
            symlink("..", d.join("a/b").join(l)).unwrap();
        }
        // A symlink sorting before the real directory it names.
        symlink("b", d.join("a/0b")).unwrap();
        let pattern = format!("{}/**/*.log", d.display());
        let got = expand(&pattern, Bounds::default()).unwrap();
        assert_eq!(got.paths, vec![d.join("a/b/y.log"), d.join("a/x.log")]);
        assert_eq!(got.cut, None);
    }

    #[test]
    fn bounds_cut_the_walk_and_say_so() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let deep = (0..5).fold(d.to_path_buf(), |p, i| p.join(i.to_string()));
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(deep.join("z.log"), "").unwrap();
        std::fs::write(d.join("top.log"), "").unwrap();
        let pattern = format!("{}/**/*.log", d.display());
        let shallow = Bounds {
            max_depth: 2,
            ..Bounds::default()
        };
        let got = expand(&pattern, shallow).unwrap();
        assert_eq!(got.paths, vec![d.join("top.log")]);
        assert!(got.cut.unwrap().contains("deeper than 2"));
        let few = Bounds {
            max_entries: 1,
            ..Bounds::default()
        };
        assert!(expand(&pattern, few).unwrap().cut.is_some());
        let all = expand(&pattern, Bounds::default()).unwrap();
        assert_eq!(all.paths, vec![deep.join("z.log"), d.join("top.log")]);
    }

    #[test]
    fn single_star_globs_and_plain_paths_match_as_before() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("app/sub")).unwrap();
        std::fs::write(d.join("app/a.log"), "").unwrap();
        std::fs::write(d.join("app/sub/b.log"), "").unwrap();
        let star = format!("{}/app/*.log", d.display());
        let got = expand(&star, Bounds::default()).unwrap();
        assert_eq!(
            got.paths,
            vec![d.join("app/a.log")],
            "* stays in one directory"
        );
        let mid = format!("{}/*/sub/*.log", d.display());
        let got = expand(&mid, Bounds::default()).unwrap();
        assert_eq!(got.paths, vec![d.join("app/sub/b.log")]);
        let plain = d.join("app/a.log");
        let got = expand(&plain.to_string_lossy(), Bounds::default()).unwrap();
        assert_eq!(got.paths, vec![plain]);
        let got = expand(&d.join("app").to_string_lossy(), Bounds::default()).unwrap();
        assert!(got.paths.is_empty(), "a directory is not a file to collect");
        assert!(expand(&format!("{}/[", d.display()), Bounds::default()).is_err());
    }
}
