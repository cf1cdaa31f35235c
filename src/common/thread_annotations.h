// Clang thread-safety annotations (https://clang.llvm.org/docs/ThreadSafetyAnalysis.html), in the
// manner of leveldb's port/thread_annotations.h. With clang they let `-Wthread-safety` prove at
// compile time that guarded state is touched only under its lock; the TY_THREAD_SAFETY build
// (scripts/check-threads.sh) turns every finding into an error. With other compilers they expand
// to nothing. Use them with ty::Mutex (common/mutex.h): std::mutex carries no annotations.
#pragma once

#if defined(__clang__)
#define TY_THREAD_ANNOTATION_ATTRIBUTE_(x) __attribute__((x))
#else
#define TY_THREAD_ANNOTATION_ATTRIBUTE_(x)
#endif

// On a field or global: it is read and written only while holding `x`.
#define TY_GUARDED_BY(x) TY_THREAD_ANNOTATION_ATTRIBUTE_(guarded_by(x))

// On a pointer field: the pointee is guarded by `x` (the pointer itself is not).
#define TY_PT_GUARDED_BY(x) TY_THREAD_ANNOTATION_ATTRIBUTE_(pt_guarded_by(x))

// On a mutex: it is always acquired after / before the named ones (lock order).
#define TY_ACQUIRED_AFTER(...) TY_THREAD_ANNOTATION_ATTRIBUTE_(acquired_after(__VA_ARGS__))
#define TY_ACQUIRED_BEFORE(...) TY_THREAD_ANNOTATION_ATTRIBUTE_(acquired_before(__VA_ARGS__))

// On a function: the caller must hold (REQUIRES) / must not hold (EXCLUDES) the capabilities.
#define TY_REQUIRES(...) TY_THREAD_ANNOTATION_ATTRIBUTE_(requires_capability(__VA_ARGS__))
#define TY_REQUIRES_SHARED(...) \
  TY_THREAD_ANNOTATION_ATTRIBUTE_(requires_shared_capability(__VA_ARGS__))
#define TY_EXCLUDES(...) TY_THREAD_ANNOTATION_ATTRIBUTE_(locks_excluded(__VA_ARGS__))

// On a function: it acquires / releases the capabilities (no argument: `this`).
#define TY_ACQUIRE(...) TY_THREAD_ANNOTATION_ATTRIBUTE_(acquire_capability(__VA_ARGS__))
#define TY_RELEASE(...) TY_THREAD_ANNOTATION_ATTRIBUTE_(release_capability(__VA_ARGS__))
#define TY_TRY_ACQUIRE(...) TY_THREAD_ANNOTATION_ATTRIBUTE_(try_acquire_capability(__VA_ARGS__))

// On a function: it checks at run time that the capability is held (and aborts otherwise).
#define TY_ASSERT_CAPABILITY(x) TY_THREAD_ANNOTATION_ATTRIBUTE_(assert_capability(x))

// On a function: it returns a reference to the named capability.
#define TY_RETURN_CAPABILITY(x) TY_THREAD_ANNOTATION_ATTRIBUTE_(lock_returned(x))

// On a class: its objects are capabilities (a mutex) / RAII holders of one (a lock guard).
#define TY_LOCKABLE TY_THREAD_ANNOTATION_ATTRIBUTE_(capability("mutex"))
#define TY_SCOPED_CAPABILITY TY_THREAD_ANNOTATION_ATTRIBUTE_(scoped_lockable)

// On a function: the analysis skips it. Each use says why the analysis cannot follow it.
#define TY_NO_THREAD_SAFETY_ANALYSIS TY_THREAD_ANNOTATION_ATTRIBUTE_(no_thread_safety_analysis)
