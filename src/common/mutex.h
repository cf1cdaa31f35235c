// Mutex, MutexLock and CondVar: std::mutex and std::condition_variable with clang thread-safety
// annotations (common/thread_annotations.h), as leveldb's port::Mutex, port::CondVar and
// MutexLock. Guarded state is declared `T x_ TY_GUARDED_BY(mu_);` and the TY_THREAD_SAFETY
// build checks every access. Thread contract: the same as the std types they wrap.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "common/thread_annotations.h"

namespace ty {

class TY_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() TY_ACQUIRE() { mu_.lock(); }
  void Unlock() TY_RELEASE() { mu_.unlock(); }

  // BasicLockable, so that std::lock_guard and std::unique_lock still compile over a Mutex. The
  // analysis cannot see through them (their bodies are in system headers), so the TY_THREAD_SAFETY
  // build rejects guarded accesses under them: use MutexLock.
  void lock() TY_ACQUIRE() { mu_.lock(); }
  void unlock() TY_RELEASE() { mu_.unlock(); }

  // Tells the analysis that the caller holds the lock (for code it cannot follow, such as a
  // callback that is only ever invoked under the lock). Checks nothing at run time.
  void AssertHeld() const TY_ASSERT_CAPABILITY(this) {}

 private:
  friend class CondVar;
  std::mutex mu_;
};

// Holds `mu` from construction to destruction. Unlock()/Lock() release and retake it in between
// (for work that must not run under the lock); the destructor releases it only if held.
class TY_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex* mu) TY_ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() TY_RELEASE() {
    if (held_) mu_->Unlock();
  }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  void Unlock() TY_RELEASE() {
    held_ = false;
    mu_->Unlock();
  }
  void Lock() TY_ACQUIRE() {
    mu_->Lock();
    held_ = true;
  }

 private:
  Mutex* const mu_;
  bool held_ = true;
};

// A condition variable used with a ty::Mutex the caller holds. Waits may wake spuriously: callers
// loop on their condition (`while (!ready_) cv_.Wait(&mu_);`), which keeps the condition in the
// annotated function instead of in a predicate lambda the analysis checks on its own.
class CondVar {
 public:
  CondVar() = default;
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;

  // Releases `mu` while waiting; holds it again on return.
  void Wait(Mutex* mu) TY_REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    cv_.wait(lock);
    lock.release();
  }

  // As Wait, until `deadline` at the latest. Returns false if it returned because the deadline
  // passed, true otherwise (a notification or a spurious wake-up).
  template <typename Clock, typename Duration>
  bool WaitUntil(Mutex* mu, const std::chrono::time_point<Clock, Duration>& deadline)
      TY_REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    const bool notified = cv_.wait_until(lock, deadline) == std::cv_status::no_timeout;
    lock.release();
    return notified;
  }

  // As WaitUntil, for at most `timeout` from now.
  template <typename Rep, typename Period>
  bool WaitFor(Mutex* mu, const std::chrono::duration<Rep, Period>& timeout) TY_REQUIRES(mu) {
    return WaitUntil(mu, std::chrono::steady_clock::now() + timeout);
  }

  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace ty
