/* The demo checkout page: 'Place order' only says that this is a demo. */
document.getElementById('place-order').addEventListener('click',function(){
var n=document.getElementById('demo-notice');n.hidden=false;n.focus();this.disabled=true;});
