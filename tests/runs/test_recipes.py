"""Tests of runs/recipes.py: which recipes draw random frame offsets and read in stages."""

from conftest import tiny_config

from runs import recipes, students


def test_random_offsets_of_a_recipe_go_where_uniform_spacing_has_a_phase_to_draw():
    def offsets(*selection):
        return recipes.recipe_flag_values("serial", *selection)["random_frame_offset"]

    assert offsets(10, "uniform") and offsets(1, "uniform", 10, 300)
    assert not offsets(1, "uniform") and not offsets(1, "uniform", 300, 300)
    for frame_sampling in ("random", "first", "middle", "last", "first_middle_last"):
        assert not offsets(10, frame_sampling) and not offsets(1, frame_sampling, 10, 300)
    assert not recipes.recipe_flag_values("paper", 1, "uniform", 10, 300)["random_frame_offset"]
    student = tiny_config(
        model="DistilledStudentModel", frames_per_video=10, distill_recipe="serial"
    )
    assert students.student_run_config(student, set()).random_frame_offset
    last = student.replace(frame_sampling="last")
    assert not students.student_run_config(last, set()).random_frame_offset


def test_the_default_recipe_reads_a_pooling_student_in_stages_unless_told_otherwise():
    for family in ("nextvlad", "netvlad", "dbof"):
        assert recipes.recipe_exit_stages("serial", family) == 3
    assert recipes.recipe_exit_stages("serial", "hierarchical") == 1
    assert recipes.recipe_exit_stages("paper", "nextvlad") == 1
    student = tiny_config(
        model="DistilledStudentModel",
        student_architecture="NeXtVLADModel",
        frame_stride=10,
        distill_recipe="serial",
    )
    assert students.student_run_config(student, set()).exit_stages == 3
    one_pass = student.replace(exit_stages=1)
    assert students.student_run_config(one_pass, {"exit_stages"}).exit_stages == 1
    hierarchical = student.replace(student_architecture="HierarchicalTeacherModel")
    assert students.student_run_config(hierarchical, set()).exit_stages == 1
