// The engine's two hot loops, compiled: `Function.apply` for one- and two-tensor ops, and the
// backward walk for a plain backward (arrays, no grad() capture, no anomaly mode).
//
// This is a twin of gpugrad/autograd.py, not a second engine: every step below is a line of
// `_apply` or `_backward_loop` there, in the same order, and everything rare (errors, hooks,
// retain_grad, version checks, scalar outputs, the cases not handled here) calls back into
// those Python functions. The Python is what to read; this file only removes the
// interpreter's cost per step, which for small arrays is most of an op's time.
//
// Built by gpugrad/backend/native_engine.py as a CPython extension; C++ only for
// std::vector (the heap).

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <algorithm>
#include <vector>

namespace {

// --- what setup() receives from gpugrad.autograd -------------------------------------------
PyTypeObject* tensor_type = nullptr;
PyTypeObject* slice_grad_type = nullptr;
PyTypeObject* function_type = nullptr;
PyObject* python_apply = nullptr;  // _apply(cls, *inputs, **params): every other case
PyObject* grad_mode = nullptr;     // thread-local, .enabled
PyObject* anomaly_mode = nullptr;  // thread-local, .enabled
PyObject* anomaly_threads = nullptr;  // [how many threads have anomaly mode on]
PyObject* sequence = nullptr;      // itertools.count() numbering the nodes
PyObject* epoch = nullptr;         // [the in-place epoch]
PyObject* forward_failed = nullptr;   // (node, inputs, exc): raises the typed error
PyObject* array_output = nullptr;     // (node, out): a 0-d array for a scalar output
PyObject* run_hooks = nullptr;        // (hooks, g, backend, False)
PyObject* give_retained = nullptr;    // (node, g)
PyObject* check_versions = nullptr;   // (node)
PyObject* freed_graph = nullptr;      // (node) -> GraphError
PyObject* wrong_count = nullptr;      // (node, gs) -> ShapeError
PyObject* fit = nullptr;  // (node, edges, gs, edge, gx, shape): gx summed down, or raises
PyObject* owned = nullptr;            // (g, upstream): a leaf's first gradient, made its own

PyObject* zero = nullptr;            // the int 0
PyObject* last_backend = nullptr;    // the backend apply saw last, and its array type
PyObject* last_array_type = nullptr;

// Slot offsets of Function and Tensor (their __slots__), read once from the descriptors.
Py_ssize_t node_edges, node_out_shape, node_seq, node_xp;
Py_ssize_t t_data, t_backend, t_grad_fn, t_requires_grad, t_grad, t_version;

PyObject *s_enabled, *s_forward, *s_backward, *s_shape, *s_array_type, *s_saved, *s_is_view,
    *s_inputs, *s_epoch, *s_out_version, *s_out_id, *s_tensor_hooks, *s_retained, *s_dense,
    *s_base, *s_copy, *s_dtype, *s_cls, *s_xp, *s_edges, *s_out_shape, *s_seq, *s_data, *s_dict;

inline PyObject*& slot(PyObject* obj, Py_ssize_t offset) {
    return *reinterpret_cast<PyObject**>(reinterpret_cast<char*>(obj) + offset);
}

// Store a new reference to `value` in a slot, dropping the old one.
inline void set_slot(PyObject* obj, Py_ssize_t offset, PyObject* value) {
    Py_INCREF(value);
    Py_XSETREF(slot(obj, offset), value);
}

bool slot_offset(PyTypeObject* type, const char* name, Py_ssize_t* out) {
    PyObject* descr = PyDict_GetItemString(type->tp_dict, name);  // borrowed
    if (descr == nullptr || Py_TYPE(descr) != &PyMemberDescr_Type) {
        PyErr_Format(PyExc_TypeError, "%s.%s is not a slot", type->tp_name, name);
        return false;
    }
    PyMemberDef* member = reinterpret_cast<PyMemberDescrObject*>(descr)->d_member;
    if (member->type != T_OBJECT_EX) {
        PyErr_Format(PyExc_TypeError, "%s.%s is not an object slot", type->tp_name, name);
        return false;
    }
    *out = member->offset;
    return true;
}

// -1 on error, else whether `obj.name` is true.
int attr_true(PyObject* obj, PyObject* name) {
    PyObject* value = PyObject_GetAttr(obj, name);
    if (value == nullptr) return -1;
    int truth = PyObject_IsTrue(value);
    Py_DECREF(value);
    return truth;
}

// _make(data, backend, grad_fn) of tensor.py: a Tensor around an array, no checks.
PyObject* make_tensor(PyObject* data, PyObject* backend, PyObject* grad_fn) {
    PyObject* version = PyList_New(2);
    if (version == nullptr) return nullptr;
    PyList_SET_ITEM(version, 0, PyLong_FromLong(0));
    PyList_SET_ITEM(version, 1, PyLong_FromLong(0));
    PyObject* t = tensor_type->tp_alloc(tensor_type, 0);
    if (t == nullptr) {
        Py_DECREF(version);
        return nullptr;
    }
    set_slot(t, t_data, data);
    set_slot(t, t_backend, backend);
    set_slot(t, t_grad_fn, grad_fn);
    set_slot(t, t_requires_grad, grad_fn == Py_None ? Py_False : Py_True);
    set_slot(t, t_grad, Py_None);
    slot(t, t_version) = version;  // the reference made above
    return t;
}

// Truth of a requires_grad slot: a bool almost always, whatever a user assigned otherwise.
int truth(PyObject* flag) {
    if (flag == Py_True) return 1;
    if (flag == Py_False || flag == Py_None) return 0;
    return PyObject_IsTrue(flag);
}

// The edge an input gives a node: its grad_fn, or the tensor itself for a leaf; None when it
// needs no gradient (a new reference).
PyObject* edge_of(PyObject* x, int requires_grad) {
    PyObject* edge = requires_grad ? slot(x, t_grad_fn) : Py_None;
    if (edge == Py_None && requires_grad) edge = x;
    Py_INCREF(edge);
    return edge;
}

// Whether the slots apply reads are all set (a Tensor made without __init__ may lack one;
// the Python apply then raises the AttributeError).
bool complete(PyObject* x) {
    return slot(x, t_data) != nullptr && slot(x, t_backend) != nullptr &&
           slot(x, t_grad_fn) != nullptr && slot(x, t_requires_grad) != nullptr;
}

// A concrete Function subclass, called without a parameter named `cls` (which the Python
// apply refuses): anything else goes to the Python apply, which raises what it should.
bool ordinary_op(PyObject* cls, PyObject* kwnames) {
    if (!PyType_Check(cls)) return false;
    PyTypeObject* type = reinterpret_cast<PyTypeObject*>(cls);
    if (!PyType_IsSubtype(type, function_type) || (type->tp_flags & Py_TPFLAGS_IS_ABSTRACT))
        return false;
    if (kwnames != nullptr)
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); ++i)
            if (PyUnicode_Compare(PyTuple_GET_ITEM(kwnames, i), s_cls) == 0) return false;
    return true;
}

// The input Tensors as the tuple the Python apply receives (a new reference, or null).
PyObject* inputs_tuple(PyObject* const* inputs, Py_ssize_t n) {
    PyObject* tuple = PyTuple_New(n);
    if (tuple == nullptr) return nullptr;
    for (Py_ssize_t i = 0; i < n; ++i) PyTuple_SET_ITEM(tuple, i, Py_NewRef(inputs[i]));
    return tuple;
}

PyObject* call_python_apply(PyObject* const* args, size_t nargsf, PyObject* kwnames) {
    return PyObject_Vectorcall(python_apply, args, PyVectorcall_NARGS(nargsf), kwnames);
}

// Function.apply(cls, *inputs, **params): see autograd._apply.
PyObject* apply(PyObject*, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
    const Py_ssize_t n = nargs - 1;  // args[0] is the class
    if (n < 1 || n > 2 || !ordinary_op(args[0], kwnames))
        return call_python_apply(args, nargs, kwnames);
    PyObject* a = args[1];
    PyObject* b = n == 2 ? args[2] : nullptr;
    if (n == 1 ? !PyObject_TypeCheck(a, tensor_type)
               : Py_TYPE(a) != tensor_type || Py_TYPE(b) != tensor_type)
        return call_python_apply(args, nargs, kwnames);
    if (!complete(a) || (n == 2 && !complete(b))) return call_python_apply(args, nargs, kwnames);
    const int a_grad = truth(slot(a, t_requires_grad));
    const int b_grad = n == 2 ? truth(slot(b, t_requires_grad)) : 0;
    if (a_grad < 0 || b_grad < 0) return nullptr;
    PyObject* backend = slot(a, t_backend);
    if (n == 2 && (slot(b, t_backend) != backend ||
                   (slot(a, t_data) == slot(b, t_data) && a != b)))
        return call_python_apply(args, nargs, kwnames);  // an error, or x with x.detach()
    if (PyList_GET_ITEM(anomaly_threads, 0) != zero) {  // someone has it on: is it this thread?
        int anomaly = attr_true(anomaly_mode, s_enabled);
        if (anomaly != 0) return anomaly < 0 ? nullptr : call_python_apply(args, nargs, kwnames);
    }

    PyTypeObject* cls = reinterpret_cast<PyTypeObject*>(args[0]);
    PyObject* node = cls->tp_alloc(cls, 0);
    if (node == nullptr) return nullptr;
    set_slot(node, node_xp, backend);

    // node.forward(*arrays, **params): the arrays in place of the tensors, params as given.
    const Py_ssize_t nkw = kwnames == nullptr ? 0 : PyTuple_GET_SIZE(kwnames);
    // One spare slot in front: PY_VECTORCALL_ARGUMENTS_OFFSET lets the callee use call[-1].
    PyObject* stack[9];
    std::vector<PyObject*> big;
    PyObject** call = stack + 1;
    if (1 + n + nkw > 8) {
        big.resize(2 + n + nkw);
        call = big.data() + 1;
    }
    call[0] = node;
    call[1] = slot(a, t_data);
    if (n == 2) call[2] = slot(b, t_data);
    for (Py_ssize_t i = 0; i < nkw; ++i) call[1 + n + i] = args[1 + n + i];
    PyObject* out = PyObject_VectorcallMethod(s_forward, call, (1 + n) | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                              kwnames);
    if (out == nullptr) {
        if (PyErr_ExceptionMatches(PyExc_ValueError) || PyErr_ExceptionMatches(PyExc_TypeError) ||
            PyErr_ExceptionMatches(PyExc_IndexError) || PyErr_ExceptionMatches(PyExc_OverflowError)) {
            PyObject *type, *value, *trace;
            PyErr_Fetch(&type, &value, &trace);
            PyErr_NormalizeException(&type, &value, &trace);
            if (trace != nullptr) PyException_SetTraceback(value, trace);
            PyObject* inputs = inputs_tuple(args + 1, n);
            if (inputs != nullptr) {
                PyObject* none = PyObject_CallFunctionObjArgs(forward_failed, node, inputs, value,
                                                              nullptr);
                Py_XDECREF(none);  // it raises; None would be a bug in the helper
                Py_DECREF(inputs);
                // The typed error's context is the array library's, as in the Python apply
                // (not whatever exception the caller happens to be handling).
                PyObject *new_type, *new_value, *new_trace;
                PyErr_Fetch(&new_type, &new_value, &new_trace);
                PyErr_NormalizeException(&new_type, &new_value, &new_trace);
                if (new_value != nullptr && value != nullptr) {
                    Py_INCREF(value);
                    PyException_SetContext(new_value, value);
                }
                PyErr_Restore(new_type, new_value, new_trace);
            }
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(trace);
        }
        Py_DECREF(node);
        return nullptr;
    }
    if (backend != last_backend) {  // backends are few and long-lived: remember the last one's
        PyObject* array_type = PyObject_GetAttr(backend, s_array_type);
        if (array_type == nullptr) goto fail_out;
        Py_XSETREF(last_array_type, array_type);
        Py_XSETREF(last_backend, Py_NewRef(backend));
    }
    if (reinterpret_cast<PyObject*>(Py_TYPE(out)) != last_array_type) {  // NumPy's 0-d results
        PyObject* fixed = PyObject_CallFunctionObjArgs(array_output, node, out, nullptr);
        Py_DECREF(out);
        if (fixed == nullptr) {
            Py_DECREF(node);
            return nullptr;
        }
        out = fixed;
    }
    {
        int track = a_grad || b_grad;
        if (track) {
            int enabled = attr_true(grad_mode, s_enabled);
            if (enabled < 0) goto fail_out;
            track = enabled;
        }
        if (!track) {
            PyObject* result = make_tensor(out, backend, Py_None);
            Py_DECREF(out);
            Py_DECREF(node);
            return result;
        }
    }
    {
        PyObject* edges = PyTuple_New(n);
        if (edges == nullptr) goto fail_out;
        // One input: its edge even when it needs no gradient, as the Python apply.
        PyTuple_SET_ITEM(edges, 0, edge_of(a, n == 1 ? 1 : a_grad));
        if (n == 2) PyTuple_SET_ITEM(edges, 1, edge_of(b, b_grad));
        slot(node, node_edges) = edges;
        PyObject* shape = PyObject_GetAttr(out, s_shape);
        if (shape == nullptr) goto fail_out;
        slot(node, node_out_shape) = shape;
        PyObject* seq = PyIter_Next(sequence);
        if (seq == nullptr) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_RuntimeError, "the node numbering ended");
            goto fail_out;
        }
        slot(node, node_seq) = seq;
    }
    {
        PyObject* result = make_tensor(out, backend, node);
        if (result == nullptr) goto fail_out;
        int saved = attr_true(node, s_saved);
        int keep_inputs = saved;
        if (saved == 0) keep_inputs = attr_true(node, s_is_view);
        if (keep_inputs < 0) goto fail_result;
        if (keep_inputs) {
            PyObject* inputs = inputs_tuple(args + 1, n);
            if (inputs == nullptr) goto fail_result;
            int bad = PyObject_SetAttr(node, s_inputs, inputs);
            Py_DECREF(inputs);
            if (bad) goto fail_result;
        }
        if (saved) {
            PyObject* out_id = PyLong_FromVoidPtr(out);
            if (out_id == nullptr || PyObject_SetAttr(node, s_epoch, PyList_GET_ITEM(epoch, 0)) ||
                PyObject_SetAttr(node, s_out_version, slot(result, t_version)) ||
                PyObject_SetAttr(node, s_out_id, out_id)) {
                Py_XDECREF(out_id);
                goto fail_result;
            }
            Py_DECREF(out_id);
        }
        Py_DECREF(out);
        Py_DECREF(node);
        return result;
    fail_result:
        Py_DECREF(result);
    }
fail_out:
    Py_DECREF(out);
    Py_DECREF(node);
    return nullptr;
}

// --- backward --------------------------------------------------------------------------------
struct Pending {
    long long seq;
    PyObject* node;  // a reference owned by the heap
    bool operator<(const Pending& other) const { return seq < other.seq; }  // newest on top
};

// node.<name> through its slot where it is a Function's and set, else through getattr (which
// raises what the Python engine would): a new reference.
PyObject* node_get(PyObject* node, Py_ssize_t offset, PyObject* name) {
    if (PyObject_TypeCheck(node, function_type)) {
        PyObject* value = slot(node, offset);
        if (value != nullptr) return Py_NewRef(value);
    }
    return PyObject_GetAttr(node, name);
}

// Raise the exception a helper made and returned (None made: the helper's own error stands).
void raise_made(PyObject* made) {
    if (made == nullptr) return;
    PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(made)), made);
    Py_DECREF(made);
}

// getattr(x, "shape", ()) == expected: 1 equal, 0 not, -1 error.
int shape_is(PyObject* x, PyObject* expected) {
    PyObject* shape = PyObject_GetAttr(x, s_shape);
    if (shape == nullptr) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return -1;
        PyErr_Clear();
        shape = PyTuple_New(0);
        if (shape == nullptr) return -1;
    }
    int same = PyObject_RichCompareBool(shape, expected, Py_EQ);
    Py_DECREF(shape);
    return same;
}

// a.name == b.name: 1, 0, or -1 on error.
int same_attr(PyObject* a, PyObject* b, PyObject* name) {
    PyObject* x = PyObject_GetAttr(a, name);
    if (x == nullptr) return -1;
    PyObject* y = PyObject_GetAttr(b, name);
    if (y == nullptr) {
        Py_DECREF(x);
        return -1;
    }
    int same = PyObject_RichCompareBool(x, y, Py_EQ);
    Py_DECREF(x);
    Py_DECREF(y);
    return same;
}

// Take a SliceGrad's dense array in place of the reference held in `g`: 0, or -1 on error.
int make_dense(PyObject** g) {
    if (Py_TYPE(*g) != slice_grad_type) return 0;
    PyObject* array = PyObject_CallMethodNoArgs(*g, s_dense);
    if (array == nullptr) return -1;
    Py_SETREF(*g, array);
    return 0;
}

// A leaf's gradient from this node joins its total: the first is kept, copied if it may share
// memory with another gradient (autograd._owned); later ones are added, in place where shape
// and dtype allow (autograd._accumulate).
int add_to_leaf(PyObject* leaf_grads, PyObject* leaf, PyObject* gx, PyObject* g) {
    PyObject* prev = PyDict_GetItemWithError(leaf_grads, leaf);  // borrowed
    if (prev == nullptr) {
        if (PyErr_Occurred()) return -1;
        if (PyObject_TypeCheck(gx, tensor_type)) {  // a backward that returned a Tensor
            PyObject* own = PyObject_CallFunctionObjArgs(owned, gx, g, nullptr);
            if (own == nullptr) return -1;
            int bad = PyDict_SetItem(leaf_grads, leaf, own);
            Py_DECREF(own);
            return bad;
        }
        int shares = gx == g;
        if (!shares) {
            PyObject* base = PyObject_GetAttr(gx, s_base);
            if (base == nullptr) return -1;
            shares = base != Py_None;
            Py_DECREF(base);
        }
        PyObject* owned = shares ? PyObject_CallMethodNoArgs(gx, s_copy) : Py_NewRef(gx);
        if (owned == nullptr) return -1;
        int bad = PyDict_SetItem(leaf_grads, leaf, owned);
        Py_DECREF(owned);
        return bad;
    }
    Py_INCREF(prev);
    int fits = same_attr(prev, gx, s_shape);
    if (fits > 0) fits = same_attr(prev, gx, s_dtype);
    PyObject* total = fits < 0 ? nullptr
                      : fits   ? PyNumber_InPlaceAdd(prev, gx)
                               : PyNumber_Add(prev, gx);
    Py_DECREF(prev);
    if (total == nullptr) return -1;
    int bad = PyDict_SetItem(leaf_grads, leaf, total);
    Py_DECREF(total);
    return bad;
}

// A node's gradient from this node joins what reached it so far; a node reached for the
// first time goes on the heap.
int add_to_node(PyObject* grads, std::vector<Pending>& heap, PyObject* edge, PyObject* gx) {
    PyObject* prev = PyDict_GetItemWithError(grads, edge);  // borrowed
    if (prev == nullptr) {
        if (PyErr_Occurred()) return -1;
        PyObject* number = node_get(edge, node_seq, s_seq);
        if (number == nullptr) return -1;
        long long seq = PyLong_AsLongLong(number);
        Py_DECREF(number);
        if ((seq == -1 && PyErr_Occurred()) || PyDict_SetItem(grads, edge, gx)) return -1;
        heap.push_back({seq, Py_NewRef(edge)});
        std::push_heap(heap.begin(), heap.end());
        return 0;
    }
    Py_INCREF(prev);
    PyObject* total = PyNumber_Add(prev, gx);
    Py_DECREF(prev);
    if (total == nullptr) return -1;
    int bad = PyDict_SetItem(grads, edge, total);
    Py_DECREF(total);
    return bad;
}

// One node: its gradient through hooks and checks, its backward, and each input's share
// passed on (autograd._backward_loop's body). 0, or -1 with an exception set.
int visit(PyObject* node, PyObject* grads, PyObject* leaf_grads, std::vector<Pending>& heap,
          int retain_graph) {
    PyObject* g = PyDict_GetItemWithError(grads, node);  // grads.pop(node)
    if (g == nullptr) {
        if (!PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, node);
        return -1;
    }
    Py_INCREF(g);
    if (PyDict_DelItem(grads, node) || make_dense(&g)) {
        Py_DECREF(g);
        return -1;
    }
    int status = -1;
    PyObject *edges = nullptr, *saved = nullptr, *gs = nullptr, *value = nullptr;
    PyObject* xp = node_get(node, node_xp, s_xp);
    if (xp == nullptr) goto done;
    // tensor hooks, then the freed-graph check, retain_grad, and the in-place check
    value = PyObject_GetAttr(node, s_tensor_hooks);
    if (value == nullptr) goto done;
    {
        int has_hooks = PyObject_IsTrue(value);
        if (has_hooks < 0) goto done;
        if (has_hooks) {
            PyObject* hooked = PyObject_CallFunctionObjArgs(run_hooks, value, g, xp, Py_False,
                                                            nullptr);
            if (hooked == nullptr) goto done;
            Py_SETREF(g, hooked);
            Py_SETREF(xp, node_get(node, node_xp, s_xp));  // as the Python reads it later
            if (xp == nullptr) goto done;
        }
    }
    Py_CLEAR(value);
    edges = node_get(node, node_edges, s_edges);
    if (edges == nullptr) goto done;
    if (edges == Py_None) {
        raise_made(PyObject_CallOneArg(freed_graph, node));
        goto done;
    }
    if (!PyTuple_CheckExact(edges)) {  // a list, from the general case of the Python apply
        Py_SETREF(edges, PySequence_Tuple(edges));
        if (edges == nullptr) goto done;
    }
    value = PyObject_GetAttr(node, s_retained);
    if (value == nullptr) goto done;
    if (value != Py_None) {
        PyObject* none = PyObject_CallFunctionObjArgs(give_retained, node, g, nullptr);
        if (none == nullptr) goto done;
        Py_DECREF(none);
    }
    Py_CLEAR(value);
    value = PyObject_GetAttr(node, s_epoch);
    if (value == nullptr) goto done;
    {
        long long made_at = PyLong_AsLongLong(value);
        if (made_at == -1 && PyErr_Occurred()) goto done;
        long long now = PyLong_AsLongLong(PyList_GET_ITEM(epoch, 0));
        if (now == -1 && PyErr_Occurred()) goto done;
        if (made_at >= 0 && made_at != now) {
            PyObject* none = PyObject_CallOneArg(check_versions, node);
            if (none == nullptr) goto done;
            Py_DECREF(none);
        }
    }
    Py_CLEAR(value);
    // gs = node.backward(node.xp, g, *node.saved)
    saved = PyObject_GetAttr(node, s_saved);
    if (saved == nullptr) goto done;
    if (!PyTuple_Check(saved)) {
        Py_SETREF(saved, PySequence_Tuple(saved));
        if (saved == nullptr) goto done;
    }
    {
        const Py_ssize_t ns = PyTuple_GET_SIZE(saved);
        PyObject* stack[9];  // with the spare slot in front, as in apply
        std::vector<PyObject*> big;
        PyObject** call = stack + 1;
        if (3 + ns > 8) {
            big.resize(4 + ns);
            call = big.data() + 1;
        }
        call[0] = node;
        call[1] = xp;
        call[2] = g;
        for (Py_ssize_t i = 0; i < ns; ++i) call[3 + i] = PyTuple_GET_ITEM(saved, i);
        gs = PyObject_VectorcallMethod(s_backward, call, (3 + ns) | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                       nullptr);
    }
    if (gs == nullptr) goto done;
    if (!PyTuple_CheckExact(gs)) {
        if (PyTuple_GET_SIZE(edges) == 1 || !PyList_CheckExact(gs)) {
            Py_SETREF(gs, PyTuple_Pack(1, gs));
        } else {
            Py_SETREF(gs, PyList_AsTuple(gs));
        }
        if (gs == nullptr) goto done;
    }
    if (PyTuple_GET_SIZE(gs) != PyTuple_GET_SIZE(edges)) {
        raise_made(PyObject_CallFunctionObjArgs(wrong_count, node, gs, nullptr));
        goto done;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(edges); ++i) {
        PyObject* edge = PyTuple_GET_ITEM(edges, i);
        PyObject* gx = PyTuple_GET_ITEM(gs, i);
        if (gx == Py_None || edge == Py_None) continue;
        const bool leaf = PyObject_TypeCheck(edge, tensor_type);
        PyObject* expected;
        if (leaf) {
            PyObject* data = slot(edge, t_data);
            data = data != nullptr ? Py_NewRef(data) : PyObject_GetAttr(edge, s_data);
            expected = data == nullptr ? nullptr : PyObject_GetAttr(data, s_shape);
            Py_XDECREF(data);
        } else {
            expected = node_get(edge, node_out_shape, s_out_shape);
        }
        if (expected == nullptr) goto done;
        int same = shape_is(gx, expected);
        if (same < 0) {
            Py_DECREF(expected);
            goto done;
        }
        // Another shape: summed down where it is the input's broadcast, else the ShapeError.
        gx = same ? Py_NewRef(gx)
                  : PyObject_CallFunctionObjArgs(fit, node, edges, gs, edge, gx, expected, nullptr);
        Py_DECREF(expected);
        if (gx == nullptr) goto done;
        int bad = leaf ? (make_dense(&gx) || add_to_leaf(leaf_grads, edge, gx, g))
                       : add_to_node(grads, heap, edge, gx);
        Py_DECREF(gx);
        if (bad) goto done;
    }
    if (!retain_graph) {  // free the saved arrays (and the edges) as soon as they are used
#if PY_VERSION_HEX < 0x030D0000  // (a private call, kept through 3.12; later ones use getattr)
        if (PyObject_TypeCheck(node, function_type)) {
            set_slot(node, node_edges, Py_None);
            PyObject** dict = _PyObject_GetDictPtr(node);  // none made where there is none
            if (dict != nullptr && *dict != nullptr) PyDict_Clear(*dict);
        } else
#endif
        {
            if (PyObject_SetAttr(node, s_edges, Py_None)) goto done;
            PyObject* dict = PyObject_GetAttr(node, s_dict);
            if (dict == nullptr) goto done;
            if (PyDict_Check(dict)) PyDict_Clear(dict);
            Py_DECREF(dict);
        }
    }
    status = 0;
done:
    Py_XDECREF(value);
    Py_XDECREF(gs);
    Py_XDECREF(saved);
    Py_XDECREF(edges);
    Py_XDECREF(xp);
    Py_DECREF(g);
    return status;
}

// backward_loop(heap, grads, leaf_grads, retain_graph): autograd._backward_loop, compiled.
// `heap` holds (-seq, node) pairs as heapq keeps them; `grads` maps each to its gradient.
PyObject* backward_loop(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
    if (nargs != 4 || !PyList_Check(args[0]) || !PyDict_Check(args[1]) ||
        !PyDict_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "backward_loop(heap, grads, leaf_grads, retain_graph)");
        return nullptr;
    }
    PyObject *grads = args[1], *leaf_grads = args[2];
    int retain_graph = PyObject_IsTrue(args[3]);
    if (retain_graph < 0) return nullptr;
    std::vector<Pending> heap;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(args[0]); ++i) {
        PyObject* pair = PyList_GET_ITEM(args[0], i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_TypeError, "backward_loop: heap items are (-seq, node)");
            for (Pending& p : heap) Py_DECREF(p.node);
            return nullptr;
        }
        long long seq = PyLong_AsLongLong(PyTuple_GET_ITEM(pair, 0));
        if (seq == -1 && PyErr_Occurred()) {
            for (Pending& p : heap) Py_DECREF(p.node);
            return nullptr;
        }
        heap.push_back({-seq, Py_NewRef(PyTuple_GET_ITEM(pair, 1))});
    }
    std::make_heap(heap.begin(), heap.end());
    int status = 0;
    while (!heap.empty() && status == 0) {
        std::pop_heap(heap.begin(), heap.end());
        PyObject* node = heap.back().node;
        heap.pop_back();
        status = visit(node, grads, leaf_grads, heap, retain_graph);
        Py_DECREF(node);
    }
    for (Pending& p : heap) Py_DECREF(p.node);
    if (status) return nullptr;
    Py_RETURN_NONE;
}

// setup(names): take the engine's types, thread-locals and helpers (autograd._compiled_setup).
PyObject* setup(PyObject*, PyObject* names) {
    if (!PyDict_Check(names)) {
        PyErr_SetString(PyExc_TypeError, "setup takes a dict");
        return nullptr;
    }
    struct Wanted {
        const char* name;
        PyObject** into;
    } wanted[] = {
        {"python_apply", &python_apply},   {"grad_mode", &grad_mode},
        {"anomaly_mode", &anomaly_mode},   {"sequence", &sequence},
        {"anomaly_threads", &anomaly_threads},
        {"epoch", &epoch},                 {"forward_failed", &forward_failed},
        {"array_output", &array_output},   {"run_hooks", &run_hooks},
        {"give_retained", &give_retained}, {"check_versions", &check_versions},
        {"freed_graph", &freed_graph},     {"wrong_count", &wrong_count},
        {"fit", &fit},                     {"owned", &owned},
    };
    for (const Wanted& w : wanted) {
        PyObject* value = PyDict_GetItemString(names, w.name);
        if (value == nullptr) {
            PyErr_Format(PyExc_KeyError, "setup: missing %s", w.name);
            return nullptr;
        }
        Py_XSETREF(*w.into, Py_NewRef(value));
    }
    PyObject* tensor = PyDict_GetItemString(names, "Tensor");
    PyObject* function = PyDict_GetItemString(names, "Function");
    PyObject* slice_grad = PyDict_GetItemString(names, "SliceGrad");
    if (function != nullptr && PyType_Check(function))
        Py_XSETREF(function_type, reinterpret_cast<PyTypeObject*>(Py_NewRef(function)));
    if (tensor == nullptr || function == nullptr || slice_grad == nullptr ||
        !PyType_Check(tensor) || !PyType_Check(function) || !PyType_Check(slice_grad) ||
        !PyList_Check(epoch) || PyList_GET_SIZE(epoch) != 1 || !PyList_Check(anomaly_threads) ||
        PyList_GET_SIZE(anomaly_threads) != 1) {
        PyErr_SetString(PyExc_TypeError, "setup: Tensor, Function, SliceGrad or epoch is wrong");
        return nullptr;
    }
    Py_XSETREF(tensor_type, reinterpret_cast<PyTypeObject*>(Py_NewRef(tensor)));
    Py_XSETREF(slice_grad_type, reinterpret_cast<PyTypeObject*>(Py_NewRef(slice_grad)));
    PyTypeObject* f = reinterpret_cast<PyTypeObject*>(function);
    if (!slot_offset(f, "edges", &node_edges) || !slot_offset(f, "out_shape", &node_out_shape) ||
        !slot_offset(f, "seq", &node_seq) || !slot_offset(f, "xp", &node_xp) ||
        !slot_offset(tensor_type, "_data", &t_data) ||
        !slot_offset(tensor_type, "_backend", &t_backend) ||
        !slot_offset(tensor_type, "grad_fn", &t_grad_fn) ||
        !slot_offset(tensor_type, "requires_grad", &t_requires_grad) ||
        !slot_offset(tensor_type, "_grad", &t_grad) ||
        !slot_offset(tensor_type, "_version", &t_version))
        return nullptr;
    Py_RETURN_NONE;
}

PyMethodDef methods[] = {
    {"apply", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(apply)),
     METH_FASTCALL | METH_KEYWORDS, "Function.apply(cls, *inputs, **params), compiled."},
    {"backward_loop", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(backward_loop)),
     METH_FASTCALL, "backward_loop(heap, grads, leaf_grads, retain_graph), compiled."},
    {"setup", setup, METH_O, "setup(names): the engine's types and helpers."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "gpugrad_engine", nullptr, -1, methods, nullptr, nullptr, nullptr, nullptr,
};

bool intern(PyObject** into, const char* text) {
    *into = PyUnicode_InternFromString(text);
    return *into != nullptr;
}

}  // namespace

PyMODINIT_FUNC PyInit_gpugrad_engine() {
    if (!intern(&s_enabled, "enabled") || !intern(&s_forward, "forward") ||
        !intern(&s_backward, "backward") || !intern(&s_shape, "shape") ||
        !intern(&s_array_type, "array_type") || !intern(&s_saved, "saved") ||
        !intern(&s_is_view, "is_view") || !intern(&s_inputs, "inputs") ||
        !intern(&s_epoch, "epoch") || !intern(&s_out_version, "out_version") ||
        !intern(&s_out_id, "out_id") || !intern(&s_tensor_hooks, "tensor_hooks") ||
        !intern(&s_retained, "retained") || !intern(&s_dense, "dense") ||
        !intern(&s_base, "base") || !intern(&s_copy, "copy") || !intern(&s_dtype, "dtype") ||
        !intern(&s_cls, "cls") || !intern(&s_xp, "xp") || !intern(&s_edges, "edges") ||
        !intern(&s_out_shape, "out_shape") || !intern(&s_seq, "seq") ||
        !intern(&s_data, "_data") || !intern(&s_dict, "__dict__"))
        return nullptr;
    zero = PyLong_FromLong(0);
    if (zero == nullptr) return nullptr;
    return PyModule_Create(&module);
}
