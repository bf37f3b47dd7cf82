"""The app in Streamlit's AppTest: a real run through real workers, numbers from the result."""

from streamlit.testing.v1 import AppTest

from core.presets import PRESETS


def test_app_runs_a_scenario_and_shows_the_measured_numbers():
    at = AppTest.from_file("../app.py", default_timeout=30)
    at.run()
    assert not at.exception
    assert at.sidebar.selectbox[0].options == list(PRESETS)
    at.sidebar.selectbox[0].set_value("adam-epsilon")
    at.sidebar.slider[0].set_value(2)
    at.run()
    assert at.dataframe[0].value["B"].tolist() == ["1e-08"] and at.dataframe[0].value["A"].tolist() == ["1e-07"]
    at.sidebar.button[0].click()
    at.run(timeout=300)
    assert not at.exception and not at.error
    c = at.session_state["result"].summary["compare"]
    shown = {m.label: m.value for m in at.metric}
    assert shown["Largest prediction gap"] == f"{c['prediction_max_abs_delta']:.3g}"
    assert shown["Test predictions that change class"] == f"{c['disagreements']} of 360"
    assert shown["Weights first differ at epoch"] == str(c["first_divergent_epoch"])
    spec = at.get("vega_lite_chart")[0].proto.spec
    assert '"strokeDash"' in spec and '"loss"' in spec
