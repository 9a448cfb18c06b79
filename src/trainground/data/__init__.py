"""Data: tables, image folders and builtin datasets as indexed tensors, plus label noise."""

from __future__ import annotations

from trainground.data.builtin import builtin_frame, builtin_names, load_builtin, load_builtin_multitarget
from trainground.data.dataset import IndexedDataset
from trainground.data.files import read_table
from trainground.data.images import (
    ImageSchema,
    load_image_folder,
    load_images_for_prediction,
)
from trainground.data.labels import LabelEncoder
from trainground.data.load import (
    load_data,
    load_features_for_prediction,
    schema_from_json,
)
from trainground.data.multitable import (
    fit_multitarget_on_rows,
    load_multitarget,
    load_targets,
    source_frame,
    target_list,
)
from trainground.data.noise import DIGIT_CONFUSION_MAP, NoisyLabels, inject_label_noise
from trainground.data.products import CLASSES as PRODUCT_CLASSES
from trainground.data.products import Products, Vocabulary, make_products, products_dataset
from trainground.data.regression_targets import with_target_scales
from trainground.data.split import stratified_split
from trainground.data.table import TableSchema, encode_table, fit_on_rows, load_table
from trainground.data.tasks import MultiTargetDataset, TaskSpec, class_task, tasks_of
from trainground.data.with_index import WithIndex

__all__ = [
    "DIGIT_CONFUSION_MAP",
    "PRODUCT_CLASSES",
    "ImageSchema",
    "IndexedDataset",
    "LabelEncoder",
    "MultiTargetDataset",
    "NoisyLabels",
    "Products",
    "TableSchema",
    "TaskSpec",
    "Vocabulary",
    "WithIndex",
    "builtin_frame",
    "builtin_names",
    "class_task",
    "encode_table",
    "fit_multitarget_on_rows",
    "fit_on_rows",
    "inject_label_noise",
    "load_builtin",
    "load_builtin_multitarget",
    "load_data",
    "load_features_for_prediction",
    "load_image_folder",
    "load_images_for_prediction",
    "load_multitarget",
    "load_table",
    "load_targets",
    "make_products",
    "products_dataset",
    "read_table",
    "schema_from_json",
    "source_frame",
    "stratified_split",
    "target_list",
    "tasks_of",
    "with_target_scales",
]
