// The sidebar's track picker (harness/leaderboard_app/picker.py): a labelled native <select>. Its choice goes
// back to Python as the component's state value "value", which reruns the script.
export default function (component) {
  const { parentElement, data, setStateValue } = component;
  let select = parentElement.querySelector("select");
  if (!select) {
    const label = document.createElement("label");
    label.className = "picker";
    label.append(document.createElement("span"));
    select = document.createElement("select");
    select.addEventListener("change", () => setStateValue("value", select.value));
    label.append(select);
    parentElement.appendChild(label);
  }
  parentElement.querySelector(".picker span").textContent = data.label;
  if (select.dataset.options !== JSON.stringify(data.options)) {
    select.dataset.options = JSON.stringify(data.options);
    select.replaceChildren(...data.options.map(([value, text]) => new Option(text, value)));
  }
  select.value = data.value;
}
