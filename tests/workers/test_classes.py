import pytest

from workers.classes import COCO_CLASS_NAMES, ClassNamesError, resolve_class_names


def test_coco_names_are_super_gradients_list():
    from workers.quiet import super_gradients_models

    super_gradients_models()
    from super_gradients.training.datasets.datasets_conf import COCO_DETECTION_CLASSES_LIST

    assert COCO_CLASS_NAMES == tuple(COCO_DETECTION_CLASSES_LIST)


def test_resolution_order():
    assert resolve_class_names(2, ("a", "b"), ("x", "y")) == ("a", "b")
    assert resolve_class_names(2, None, ("x", "y")) == ("x", "y")
    assert resolve_class_names(80, None, None) == COCO_CLASS_NAMES
    assert resolve_class_names(3, None, None) == ("class_0", "class_1", "class_2")
    with pytest.raises(ClassNamesError, match="lists 2 class names but the model has 3"):
        resolve_class_names(3, ("a", "b"), None)
