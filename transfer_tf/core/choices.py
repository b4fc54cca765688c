"""The values each option takes. Pure Python, so settings and the command line need no TensorFlow."""

TASKS = ("multiclass", "binary", "multilabel")
POOLINGS = ("avg", "max")
DTYPE_POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
AUGMENTATIONS = ("none", "light", "strong")
# How an image of another shape reaches the model's input size:
# - "stretch": resize to the target height and width, changing the aspect ratio if it differs
#   (what mobile runtimes such as MediaPipe do by default, so exported models see the same images);
# - "crop": keep the aspect ratio, scale to cover the target, crop the centre;
# - "pad": keep the aspect ratio, scale to fit inside the target, pad with black.
RESIZE_POLICIES = ("stretch", "crop", "pad")
FEATURE_CACHE_MODES = ("auto", "memory", "off")
CLASS_WEIGHTS = ("balanced",)
PRECISIONS = ("float32", "float16", "dynamic_range", "int8")
# The files `export` can write beside model.keras; onnx and openvino need the extras of their names.
EXPORT_FORMATS = ("saved_model", "tflite", "onnx", "openvino")
# "dense": the head fine_tune trains; the others: a scikit-learn estimator on the frozen features.
HEADS = ("dense", "logistic", "linear_svm", "rbf_svm", "knn")
PRETRAINING_METHODS = ("autoencoder", "masked")
ADAPTATION_METHODS = ("adabn", "dann", "coral")
SCHEDULES = ("constant", "cosine", "one_cycle")
