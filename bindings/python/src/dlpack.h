/* The DLPack structures Strata exports, written from the specification
 * (https://dmlc.github.io/dlpack/latest/c_api.html, dlpack.h v1.0), with
 * only what a 1-D byte tensor in host memory needs. The layouts must match
 * the specification's exactly: consumers (numpy, torch) read them.
 *
 * Two capsule kinds exist. A consumer that passes max_version >= (1, 0) to
 * __dlpack__ gets a "dltensor_versioned" capsule holding a
 * DLManagedTensorVersioned, which carries flags (DLPACK_FLAG_BITMASK_
 * READ_ONLY); an older consumer gets a "dltensor" capsule holding a
 * DLManagedTensor, which has no way to say read-only. A consumer that takes
 * the tensor renames the capsule "used_dltensor[_versioned]" and calls the
 * deleter when done; a capsule never consumed is deleted by its destructor. */
#ifndef STRATA_PY_DLPACK_H
#define STRATA_PY_DLPACK_H

#include <stdint.h>

#define DLPACK_MAJOR_VERSION 1
#define DLPACK_MINOR_VERSION 0

/* DLDeviceType: the values the specification gives. */
enum { kDLCPU = 1, kDLCUDA = 2, kDLCUDAHost = 3 };
/* DLDataTypeCode */
enum { kDLInt = 0, kDLUInt = 1, kDLFloat = 2 };

typedef struct {
  int32_t device_type; /* the specification's enum DLDeviceType: an int */
  int32_t device_id;
} DLDevice;

typedef struct {
  uint8_t code;
  uint8_t bits;
  uint16_t lanes;
} DLDataType;

typedef struct {
  void *data;
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t *shape;
  int64_t *strides; /* in elements; NULL means compact row-major */
  uint64_t byte_offset;
} DLTensor;

typedef struct DLManagedTensor {
  DLTensor dl_tensor;
  void *manager_ctx;
  void (*deleter)(struct DLManagedTensor *self);
} DLManagedTensor;

typedef struct {
  uint32_t major;
  uint32_t minor;
} DLPackVersion;

/* The tensor's memory must not be written. */
#define DLPACK_FLAG_BITMASK_READ_ONLY (1ull << 0)
/* The producer copied the data for this export. */
#define DLPACK_FLAG_BITMASK_IS_COPIED (1ull << 1)

typedef struct DLManagedTensorVersioned {
  DLPackVersion version;
  void *manager_ctx;
  void (*deleter)(struct DLManagedTensorVersioned *self);
  uint64_t flags;
  DLTensor dl_tensor;
} DLManagedTensorVersioned;

#endif /* STRATA_PY_DLPACK_H */
