// Instance volumes: holds an instance tree (what the training process sees as /opt/ml) to its
// job's VolumeSizeInGB, the way SageMaker gives each instance an EBS volume of that size.
//
// Where the machine allows it (root, loop devices, mkfs.ext4), the tree is its own file system:
// a sparse ext4 image <tree>.volume of exactly that size, mounted on <tree> by a loop device with
// autoclear (the loop device goes when the file system is unmounted). A job that fills it gets
// ENOSPC inside the volume and the host keeps its space. Where it does not, the caller watches
// the tree's usage instead (TreeBytes) and ends the job past the size.
//
// Who calls what: the agent mounts its own tree before staging (off the control loop, in
// parallel across instances); the controller releases an attempt's trees once the attempt's
// agents are gone (algo-1 reads its siblings' trees to merge the model until then), and sweeps
// what a crashed server left at start. Nothing here runs in a forked child.
//
// Thread contract: every function may be called from any thread; none keeps state.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"

namespace ty::storage {

// The image file beside a tree: "<tree>.volume" (no trailing slash on `tree`).
std::string VolumeImagePath(const std::string& tree);

// Makes <tree>.volume a sparse file of `size_gib` GiB, formats it ext4 (no reserved blocks, no
// journal: the volume is scratch space that never outlives a crash) and mounts it on `tree`
// (nosuid, nodev), then removes the file system's lost+found, so the tree starts empty.
// REQUIRES: `tree` is an empty directory, size_gib >= 1. Errors: FailedPrecondition when the
// machine cannot (not root, no loop device, no mkfs.ext4), naming why; IoError otherwise. On
// error nothing is left mounted and the image is removed.
Status MountInstanceVolume(const std::string& tree, int size_gib);

// Best effort: unmounts `tree` when it is a mount point (lazily: a process still inside keeps
// using it until it leaves, and the loop device goes with the last user) and removes
// <tree>.volume. A tree that was never mounted is left as it is.
void ReleaseInstanceVolume(const std::string& tree);

// Releases the instance volumes of every tree directly under `attempt_dir` (algo-1, algo-2...).
void ReleaseAttemptVolumes(const std::string& attempt_dir);

// For a server starting after a crash: releases every mounted tree and removes every *.volume
// image under `jobs_root` (<data-dir>/jobs) that is not under one of the directories in `keep`
// (the attempt dirs of re-adopted jobs), and detaches loop devices whose backing file is such an
// image. Returns the trees/images released, sorted.
std::vector<std::string> SweepInstanceVolumes(const std::string& jobs_root,
                                              const std::set<std::string>& keep);

// True when the file system holding `dir` has less than `slack_bytes` left for unprivileged
// writes (statvfs f_bavail): the instance volume is full.
bool VolumeFull(const std::string& dir, uint64_t slack_bytes = uint64_t{1} << 20);

// Bytes the files under `dir` (or the file `dir`) occupy on disk (allocated blocks; hard links
// counted once), without crossing into other file systems. For the fallback that watches a tree
// instead of mounting it. With `apparent`, file sizes instead (what copying the files would write,
// holes included).
uint64_t TreeBytes(const std::string& dir, bool apparent = false);

// The FailureReason of a job whose instance volume filled up:
// "ClientError: the instance's storage volume (VolumeSizeInGB 1) is full: <what>. Use a larger
// VolumeSizeInGB, or write less to /opt/ml (input channels in File mode count toward it)."
std::string VolumeFullReason(int size_gib, const std::string& what);

}  // namespace ty::storage
