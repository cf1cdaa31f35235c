#include "common/mutex.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <vector>

namespace ty {
namespace {

// Guarded state as production code declares it, so the TY_THREAD_SAFETY build checks this file's
// accesses too.
struct Counter {
  Mutex mu;
  CondVar cv;
  int value TY_GUARDED_BY(mu) = 0;
  bool ready TY_GUARDED_BY(mu) = false;
};

TEST(MutexTest, MutexLockExcludesOtherThreads) {
  Counter c;
  constexpr int kThreads = 4;
  constexpr int kIncrements = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&c] {
      for (int i = 0; i < kIncrements; ++i) {
        MutexLock lock(&c.mu);
        // A read and a separate write: lost updates would show if the lock did not exclude.
        const int v = c.value;
        c.value = v + 1;
      }
    });
  }
  for (auto& t : threads) t.join();
  MutexLock lock(&c.mu);
  EXPECT_EQ(c.value, kThreads * kIncrements);
}

TEST(MutexTest, MutexLockUnlockLetsOthersInAndLockRetakes) {
  Counter c;
  MutexLock lock(&c.mu);
  c.value = 1;
  lock.Unlock();
  // Would deadlock if Unlock() had not released the mutex.
  std::thread other([&c] {
    MutexLock inner(&c.mu);
    c.value = 2;
  });
  other.join();
  lock.Lock();
  EXPECT_EQ(c.value, 2);
}

TEST(MutexTest, BasicLockableForStdGuards) {
  Mutex mu;
  { std::lock_guard<Mutex> guard(mu); }
  // Released by the guard: taking it again does not deadlock.
  MutexLock lock(&mu);
}

TEST(CondVarTest, WaitReturnsOnceSignalledAndHoldsTheLock) {
  Counter c;
  std::thread producer([&c] {
    MutexLock lock(&c.mu);
    c.value = 42;
    c.ready = true;
    c.cv.SignalAll();
  });
  {
    MutexLock lock(&c.mu);
    while (!c.ready) c.cv.Wait(&c.mu);
    EXPECT_EQ(c.value, 42);
    c.value = 43;  // still held: the write is ours
  }
  producer.join();
  MutexLock lock(&c.mu);
  EXPECT_EQ(c.value, 43);
}

TEST(CondVarTest, WaitUntilReportsAPassedDeadline) {
  Counter c;
  MutexLock lock(&c.mu);
  EXPECT_FALSE(c.cv.WaitUntil(&c.mu, std::chrono::steady_clock::now() - std::chrono::seconds(1)));
  EXPECT_FALSE(c.cv.WaitFor(&c.mu, std::chrono::milliseconds(0)));
  c.value = 7;  // the lock is held again after a timed-out wait
  EXPECT_EQ(c.value, 7);
}

TEST(CondVarTest, WaitUntilWakesBeforeTheDeadlineWhenSignalled) {
  Counter c;
  std::thread producer([&c] {
    MutexLock lock(&c.mu);
    c.ready = true;
    c.cv.Signal();
  });
  bool timed_out = false;
  {
    MutexLock lock(&c.mu);
    // A deadline far away: only a signal ends this loop in reasonable time.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::hours(1);
    while (!c.ready && !timed_out) timed_out = !c.cv.WaitUntil(&c.mu, deadline);
  }
  producer.join();
  EXPECT_FALSE(timed_out);
}

}  // namespace
}  // namespace ty
